// Injected into a copy of the Snakemake report by tests/test_report.py: clicks through the rendered app like a
// reader would (menu -> category -> subcategory -> each result's view button) and writes what it saw as JSON
// into a <pre> element with id gendistill-walkthrough (updated after every step), which `chromium --dump-dom` then returns.
(async function () {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const out = { menu: [], pages: {}, errors: window.__gdErrors || [], done: false };
  const pre = document.createElement("pre");
  pre.id = "gendistill-walkthrough";
  pre.style.display = "none";
  document.body.appendChild(pre);
  const save = () => { pre.textContent = JSON.stringify(out); };
  save();
  const links = () => [...document.querySelectorAll("#app a")];
  const clickText = (text) => {
    const a = links().find((x) => x.textContent.trim() === text);
    if (a) a.click();
    return !!a;
  };
  const decode = (uri) => {
    const i = uri.indexOf("base64,");
    if (i < 0) return decodeURIComponent(uri.slice(uri.indexOf(",") + 1));
    return new TextDecoder().decode(Uint8Array.from(atob(uri.slice(i + 7)), (c) => c.charCodeAt(0)));
  };
  try {
    await sleep(300);
    out.menu = [...document.querySelectorAll("#app nav li span")].map((s) => s.textContent.trim());
    out.description = (document.querySelector("#app .prose") || {}).textContent || "";
    for (const cat of Object.keys(categories).sort()) {
      for (const sub of Object.keys(categories[cat]).sort()) {
        const key = `${cat}/${sub}`;
        const page = { clicked: clickText(cat), rows: [], views: {} };
        await sleep(200);
        if (Object.keys(categories[cat]).length > 1) {
          page.clicked = page.clicked && clickText(sub);
          await sleep(200);
        }
        const rows = [...document.querySelectorAll("#app nav tbody tr")];
        for (const tr of rows) {
          const name = tr.querySelector("td").textContent.trim();
          page.rows.push(name);
          const eye = tr.querySelector("a[iconname=eye]");
          if (!eye) continue;
          const download = eye.getAttribute("download");
          if (download) { page.views[name] = { download, bytes: decode(eye.getAttribute("href")).length }; continue; }
          eye.click();
          await sleep(200);
          const img = document.querySelector("#app img:not(.h-4)");
          const frame = document.querySelector("#app iframe");
          if (img && img.src.startsWith("data:image")) {
            if (!img.complete) await new Promise((r) => { img.onload = r; img.onerror = r; });
            page.views[name] = { img: [img.naturalWidth, img.naturalHeight] };
          } else if (frame) {
            const doc = new DOMParser().parseFromString(decode(frame.getAttribute("src")), "text/html");
            page.views[name] = { html: doc.body.textContent.slice(0, 4000) };
          } else {
            page.views[name] = { nothing: true };
          }
        }
        out.pages[key] = page;
        save();
        clickText("Results"); // breadcrumb back to the menu
        await sleep(200);
      }
    }
  } catch (err) {
    out.errors.push(String(err && err.stack || err));
  }
  out.done = true;
  save();
})();
