/* Steward datasets overview: the track and discover tables, their filters and each dataset's
   history, drawn from the JSON embedded in this file. Every value from the database is
   untrusted: it only ever reaches the page through textContent or a property. */
(() => {
  "use strict";

  const DATA = JSON.parse(document.getElementById("overview-data").textContent);
  const PAGE_SIZE = 100;
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  const form = document.getElementById("filters");
  const views = [];

  function shown(value, col) {
    if (value === null || value === undefined) return "";
    if (col.kind === "list") return value.join("; ");
    if (col.kind === "time") return String(value).slice(0, 16).replace("T", " ");
    if (col.kind === "int") return Number(value).toLocaleString("en-US");
    return String(value);
  }

  function when(iso) {
    return iso ? String(iso).slice(0, 19).replace("T", " ") : "";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    let s = Math.round(seconds);
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s} s`;
    return `${s} s`;
  }

  function element(tag, text, className) {
    const el = document.createElement(tag);
    if (text !== undefined && text !== null) el.textContent = text;
    if (className) el.className = className;
    return el;
  }

  /* ---- filters ---------------------------------------------------------------------------- */
  function chosen() {
    const f = {};
    for (const input of form.querySelectorAll("[data-filter]")) {
      const key = input.dataset.filter;
      f[key] = input.type === "checkbox" ? input.checked : input.value.trim();
    }
    f.search = (f.search || "").toLowerCase();
    return f;
  }

  function keeps(row, f) {
    const ds = row.ref === null ? null : DATA.datasets[row.ref];
    if (f.state && (!ds || ds.state !== f.state)) return false;
    if (f.stage && (!ds || !ds.stages.includes(f.stage))) return false;
    if (f.tech && (!ds || !ds.tech.includes(f.tech))) return false;
    if (f.organism && (!ds || !ds.organism.includes(f.organism))) return false;
    if (f.curator && (!ds || ds.curator !== f.curator)) return false;
    if (f.problems && (!ds || ds.problems === 0)) return false;
    if (f.duplicates && (!ds || !ds.duplicate_of)) return false;
    return !f.search || row.text.includes(f.search);
  }

  /* ---- tables ----------------------------------------------------------------------------- */
  function compare(a, b, col) {
    const x = a.values[col.index];
    const y = b.values[col.index];
    const xEmpty = x === null || x === undefined || x === "" || (Array.isArray(x) && !x.length);
    const yEmpty = y === null || y === undefined || y === "" || (Array.isArray(y) && !y.length);
    if (xEmpty || yEmpty) return xEmpty === yEmpty ? 0 : xEmpty ? 1 : -1;
    if (col.kind === "int") return x - y;
    return collator.compare(shown(x, col), shown(y, col));
  }

  function setUp(table) {
    const view = DATA.views[table.dataset.view];
    const columns = view.columns.map((c, index) => ({ ...c, index }));
    const rows = view.rows.map((values, i) => ({
      values,
      ref: view.refs[i],
      text: values.map((v, j) => shown(v, columns[j])).join("\n").toLowerCase(),
    }));
    const state = { table, columns, rows, matching: rows, sort: null, dir: 1, page: 0 };
    const section = table.closest("section");
    state.status = section.querySelector(".status");
    state.pageStatus = section.querySelector(".page-status");
    state.prev = section.querySelector("[data-page=prev]");
    state.next = section.querySelector("[data-page=next]");
    const head = element("tr");
    for (const col of columns) {
      const th = element("th", null, col.kind);
      th.setAttribute("aria-sort", "none");
      th.scope = "col";
      const button = element("button", col.label);
      button.type = "button";
      button.addEventListener("click", () => sortBy(state, col));
      th.append(button);
      head.append(th);
    }
    table.tHead.append(head);
    state.prev.addEventListener("click", () => turn(state, -1));
    state.next.addEventListener("click", () => turn(state, 1));
    table.tBodies[0].addEventListener("click", (event) => open(event.target));
    table.tBodies[0].addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        open(event.target);
      }
    });
    views.push(state);
  }

  function sortBy(state, col) {
    state.dir = state.sort === col ? -state.dir : 1;
    state.sort = col;
    state.table.tHead.querySelectorAll("th").forEach((th, i) => {
      const sorted = i === col.index;
      th.setAttribute("aria-sort", sorted ? (state.dir > 0 ? "ascending" : "descending") : "none");
    });
    refresh(state, false);
  }

  function turn(state, by) {
    state.page += by;
    draw(state);
  }

  function refresh(state, filter) {
    if (filter) {
      const f = chosen();
      state.matching = state.rows.filter((row) => keeps(row, f));
    }
    if (state.sort) {
      const col = state.sort;
      state.matching = [...state.matching].sort((a, b) => state.dir * compare(a, b, col));
    }
    state.page = 0;
    draw(state);
  }

  function draw(state) {
    const body = state.table.tBodies[0];
    const total = state.rows.length;
    const n = state.matching.length;
    const pages = Math.max(1, Math.ceil(n / PAGE_SIZE));
    state.page = Math.min(Math.max(state.page, 0), pages - 1);
    const start = state.page * PAGE_SIZE;
    const rows = state.matching.slice(start, start + PAGE_SIZE);
    body.replaceChildren();
    for (const row of rows) {
      const tr = element("tr");
      tr.tabIndex = 0;
      if (row.ref !== null) tr.dataset.ref = String(row.ref);
      const ds = row.ref === null ? null : DATA.datasets[row.ref];
      if (ds && ds.problems) tr.classList.add("problems");
      row.values.forEach((value, i) => tr.append(element("td", shown(value, state.columns[i]), state.columns[i].kind)));
      body.append(tr);
    }
    if (!n) {
      const td = element("td", "No matching datasets.", "none");
      td.colSpan = state.columns.length;
      const tr = element("tr");
      tr.append(td);
      body.append(tr);
    }
    const all = `${total} dataset${total === 1 ? "" : "s"}`;
    state.status.textContent = n === total ? all : `${n} of ${all}`;
    state.pageStatus.textContent = n
      ? `rows ${start + 1}–${start + rows.length} of ${n} · page ${state.page + 1} of ${pages}`
      : "";
    state.prev.disabled = state.page === 0;
    state.next.disabled = state.page >= pages - 1;
  }

  /* ---- a dataset's history ------------------------------------------------------------------ */
  function open(target) {
    const tr = target.closest("tr[data-ref]");
    if (!tr) return;
    document.querySelectorAll("tr.selected").forEach((el) => {
      el.classList.remove("selected");
      el.removeAttribute("aria-current");
    });
    tr.classList.add("selected");
    tr.setAttribute("aria-current", "true");
    showHistory(DATA.datasets[Number(tr.dataset.ref)]);
  }

  function showHistory(ds) {
    const section = document.getElementById("history");
    section.querySelector(".accession").textContent = `${ds.accession} (${ds.project})`;
    const about = [`${ds.state} since ${when(ds.since)}`];
    if (ds.title) about.push(ds.title);
    if (ds.problem_kinds.length) about.push(`problems: ${ds.problem_kinds.join(", ")}`);
    if (ds.duplicate_of) about.push(`duplicate of ${ds.duplicate_of}`);
    section.querySelector(".about").textContent = about.join(" · ");
    const body = section.querySelector("table.events tbody");
    body.replaceChildren();
    for (const [seq, at, actor, type, from, to, spent, note, outOfOrder] of ds.events) {
      const tr = element("tr", null, from !== to ? "move" : "");
      tr.append(
        element("td", String(seq), "int"),
        element("td", when(at), "time"),
        element("td", type, "type"),
        element("td", from || ""),
        element("td", to),
        element("td", duration(spent), "duration"),
        element("td", actor),
        element("td", (outOfOrder ? "OUT OF ORDER: dated before the event it follows. " : "") + (note || ""), "note"),
      );
      body.append(tr);
    }
    const stays = section.querySelector(".stays");
    stays.replaceChildren();
    const rank = new Map(DATA.order.map((s, i) => [s, i]));
    const spent = [...ds.time_in_state].sort((a, b) => (rank.get(a[0]) ?? 99) - (rank.get(b[0]) ?? 99));
    for (const [name, seconds] of spent) {
      const div = element("div");
      div.dataset.state = name;
      const now = name === ds.state && ds.current_for !== null ? ` (now, for ${duration(ds.current_for)})` : "";
      div.append(element("dt", name), element("dd", duration(seconds) + now));
      stays.append(div);
    }
    section.hidden = false;
    section.scrollIntoView({ block: "start" });
  }

  for (const table of document.querySelectorAll("table[data-view]")) setUp(table);
  const update = () => views.forEach((state) => refresh(state, true));
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  form.addEventListener("submit", (event) => event.preventDefault());
  update();
})();
