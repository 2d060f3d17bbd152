/**
 * The gallery's own style sheet and script, as fixed strings: the page's Content-Security-Policy
 * allows exactly these two by their SHA-256 (render-html.ts), so no other script or style can run,
 * whatever a hostile name manages to put in the page. The script only enhances: every card is in
 * the HTML, so with JavaScript off the page is a complete list. It reads the card data with
 * `textContent` + `JSON.parse` and writes only `textContent`, `hidden` and `value`: never markup.
 * Neither string may contain `</` (it would end its element early); a test checks.
 */

export const GALLERY_CSS = `
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1c1e21;--muted:#5b616b;--line:#d7dbe0;--accent:#0b5cad;--focus:#c2410c;
--chip:#eef1f5;--ok:#1a7f37;--warn:#9a6700;--bad:#b42318;--upd:#0b5cad;--thumb:#e4e7eb}
@media (prefers-color-scheme:dark){:root{--bg:#111317;--card:#1b1e24;--fg:#e6e8eb;--muted:#a2a9b4;--line:#323842;--accent:#7cb7ff;
--focus:#ffb36b;--chip:#262b33;--ok:#5fd382;--warn:#e3b341;--bad:#ff8a80;--upd:#7cb7ff;--thumb:#262b33}}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--accent)}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-999px;top:0;background:var(--card);padding:.5rem 1rem}
.skip:focus{left:.5rem;z-index:2}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
header{padding:1.25rem 1.5rem .75rem}
h1{margin:0 0 .25rem;font-size:1.5rem}
.meta{margin:0;color:var(--muted);font-size:.85rem;overflow-wrap:anywhere}
.summary{display:flex;flex-wrap:wrap;gap:.4rem;margin:.75rem 0 0;padding:0;list-style:none}
.summary li{background:var(--card);border:1px solid var(--line);border-radius:999px;padding:.15rem .7rem;font-size:.85rem}
.summary b{font-variant-numeric:tabular-nums}
.notes{margin:.5rem 0 0;color:var(--muted);font-size:.85rem}
.notes li{overflow-wrap:anywhere}
.controls{z-index:1;display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;padding:.75rem 1.5rem;
background:var(--bg);border-bottom:1px solid var(--line)}
@media (min-width:48rem) and (min-height:40rem){.controls{position:sticky;top:0}html{scroll-padding-top:10rem}}
@media (min-width:75rem) and (min-height:40rem){html{scroll-padding-top:6rem}}
.controls label{display:flex;flex-direction:column;font-size:.78rem;color:var(--muted);gap:.15rem}
.controls select{max-width:16rem}
.controls input,.controls select,.controls button{font:inherit;color:var(--fg);background:var(--card);border:1px solid var(--line);
border-radius:6px;padding:.35rem .5rem;min-height:2.2rem}
.controls input{width:18rem;max-width:70vw}
.controls button{cursor:pointer}
#count{margin:0 0 .35rem;font-size:.9rem;color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(14rem,1fr));gap:1rem;padding:1rem 1.5rem 2rem;margin:0;list-style:none}
.card{display:flex;flex-direction:column;background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden;
content-visibility:auto;contain-intrinsic-size:auto 32rem}
.thumb{margin:0;aspect-ratio:4/5;overflow:hidden;background:var(--thumb);display:flex;align-items:center;justify-content:center}
.thumb img{width:100%;height:100%;object-fit:cover;display:block}
.thumb figcaption{padding:1rem;color:var(--muted);font-size:.85rem;text-align:center;overflow-wrap:anywhere}
.thumb.failed figcaption{color:var(--bad)}
.body{padding:.75rem .9rem 1rem;display:flex;flex-direction:column;gap:.45rem;min-width:0}
.card h2{margin:0;font-size:1.05rem;line-height:1.3;overflow-wrap:anywhere}
.card h2,.ver,.words code{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:4;line-clamp:4;overflow:hidden}
.ver,.words code{-webkit-line-clamp:2;line-clamp:2}
.ver{margin:0;color:var(--muted);overflow-wrap:anywhere}
.badges{display:flex;flex-wrap:wrap;gap:.3rem;margin:0;padding:0;list-style:none}
.badge{font-size:.75rem;border-radius:4px;padding:.05rem .4rem;border:1px solid currentColor}
.b-update,.b-newer-other-base{color:var(--upd)}.b-duplicate,.b-ambiguous,.b-early-access{color:var(--warn)}.b-gone,.b-taken-down,.b-archived{color:var(--bad)}
.facts{display:grid;grid-template-columns:auto 1fr;gap:.1rem .6rem;margin:0;font-size:.85rem}
.facts dt{color:var(--muted)}
.facts dd{margin:0;overflow-wrap:anywhere}
.st-found{color:var(--ok)}.st-not_found,.st-skipped{color:var(--warn)}.st-error{color:var(--bad)}
.words h3{margin:0 0 .2rem;font-size:.8rem;color:var(--muted);font-weight:normal}
.words ul{display:flex;flex-wrap:wrap;gap:.3rem;margin:0;padding:0;list-style:none}
.words li{display:flex;align-items:center;background:var(--chip);border-radius:6px;overflow:hidden}
.words code{padding:.15rem .4rem;font-size:.82rem;overflow-wrap:anywhere}
.copy{font:inherit;font-size:.75rem;border:0;border-left:1px solid var(--line);background:transparent;color:var(--accent);
padding:.2rem .45rem;cursor:pointer;min-height:1.8rem}
details{font-size:.85rem}
details .facts{margin-top:.3rem}
details p{white-space:pre-line;margin:.3rem 0 0;overflow-wrap:anywhere}
.links{margin:auto 0 0;padding-top:.25rem;font-size:.9rem}
.empty{padding:2rem 1.5rem;color:var(--muted)}
`;

export const GALLERY_JS = `
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("gallery-data").textContent);
  var grid = document.getElementById("cards");
  var cards = Array.prototype.slice.call(grid.querySelectorAll(".card"));
  if (cards.length !== data.length) return;
  var $ = function (id) { return document.getElementById(id); };
  var search = $("q"), type = $("f-type"), base = $("f-base"), status = $("f-status"), sort = $("sort");
  var count = $("count"), announce = $("announce"), none = $("none");
  $("nojs").hidden = true;
  // An empty inventory says so in the page; search and filters would have nothing to act on.
  if (cards.length === 0) return;
  $("controls").hidden = false;
  document.querySelectorAll("button.copy").forEach(function (b) { b.hidden = false; });
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  function matches(d, terms) {
    if (type.value && d.t !== type.value) return false;
    if (base.value && d.b !== base.value) return false;
    if (status.value && d.st.indexOf(status.value) < 0) return false;
    for (var i = 0; i < terms.length; i++) if (d.s.indexOf(terms[i]) < 0) return false;
    return true;
  }
  function filter() {
    var terms = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    for (var i = 0; i < cards.length; i++) {
      var ok = matches(data[i], terms);
      cards[i].hidden = !ok;
      if (ok) shown++;
    }
    count.textContent = shown === cards.length ? cards.length + (cards.length === 1 ? " model" : " models")
      : shown + " of " + cards.length + " models shown";
    none.hidden = shown !== 0;
  }
  var compare = {
    name: function () { return 0; },
    size: function (a, b) { return (b.z || 0) - (a.z || 0); },
    newest: function (a, b) { return (b.d || "").localeCompare(a.d || ""); },
    type: function (a, b) { return collator.compare(a.t, b.t); },
    base: function (a, b) { return collator.compare(a.b, b.b); },
    path: function (a, b) { return a.p < b.p ? -1 : a.p > b.p ? 1 : 0; }
  };
  function order() {
    var by = compare[sort.value] || compare.name;
    var idx = cards.map(function (_, i) { return i; });
    // Ties keep card order: the page is rendered in name order.
    idx.sort(function (a, b) { return by(data[a], data[b]) || a - b; });
    idx.forEach(function (i) { grid.appendChild(cards[i]); });
  }
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "vh";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      ok ? resolve() : reject(new Error("copy refused"));
    });
  }
  grid.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) return;
    var text = button.parentNode.querySelector("code").textContent;
    copyText(text).then(function () {
      button.textContent = "Copied";
      announce.textContent = "Copied: " + text;
    }, function () {
      button.textContent = "Copy failed";
      announce.textContent = "Could not copy; select the word instead";
    });
    setTimeout(function () { button.textContent = "Copy"; }, 1500);
  });
  search.addEventListener("input", filter);
  [type, base, status].forEach(function (s) { s.addEventListener("change", filter); });
  sort.addEventListener("change", order);
  $("reset").addEventListener("click", function () {
    search.value = ""; type.value = ""; base.value = ""; status.value = "";
    filter();
    search.focus();
  });
  filter();
})();
`;
