/* Steward package report: tables and charts drawn from the JSON embedded in this file.
   Values from manifests are untrusted: they only ever reach the page through textContent,
   attributes set by property, Plotly (labels entity-escaped by the renderer) and CSV cells. */
(() => {
  "use strict";

  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const PAGE_SIZE = 100;
  const UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  /* Same rule as human_size() in report.py: decimal units, three significant digits. */
  function humanSize(n) {
    if (n < 1000) return `${n} B`;
    let value = n;
    let unit = 0;
    while (value >= 999.5 && unit < UNITS.length - 1) {
      value /= 1000;
      unit += 1;
    }
    const digits = value >= 99.95 ? 0 : value >= 9.995 ? 1 : 2;
    return `${value.toFixed(digits)} ${UNITS[unit]}`;
  }

  function bytes(n) {
    return `${n.toLocaleString("en-US")} bytes`;
  }

  /* RFC 4180 quoting; text starting with = + - @ (or tab/CR) gets a leading quote so that
     spreadsheets show it instead of running it as a formula. */
  function csvCell(value) {
    if (value === null || value === undefined) return "";
    let text = String(value);
    if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    if (/[",\r\n]/.test(text) || /^\s|\s$/.test(text)) text = `"${text.replace(/"/g, '""')}"`;
    return text;
  }

  function download(name, text) {
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function fileName(tableId) {
    const base = String(DATA.package).replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[.-]+/, "");
    return `${base || "package"}-${tableId}.csv`;
  }

  function cellText(value, col) {
    if (value === null || value === undefined) return "";
    if (col.kind === "size") return `${humanSize(value)} ${value}`;
    return String(value);
  }

  function makeCell(value, col) {
    const td = document.createElement("td");
    td.className = col.kind;
    if (value === null || value === undefined || value === "") return td;
    if (col.kind === "size") {
      td.textContent = humanSize(value);
      td.title = bytes(value);
    } else if (col.kind === "int") {
      td.textContent = value.toLocaleString("en-US");
    } else if (col.kind === "hash") {
      const code = document.createElement("code");
      code.textContent = value;
      code.title = value;
      td.append(code);
    } else if (col.kind === "warning") {
      td.textContent = `⚠ ${value}`;
    } else {
      td.textContent = value;
    }
    return td;
  }

  function setupTable(block) {
    const id = block.dataset.table;
    const spec = DATA.tables[id];
    const source = DATA[spec.source];
    const at = Object.fromEntries(source.fields.map((name, i) => [name, i]));
    const rows = spec.section
      ? source.rows.filter((row) => row[at.section] === spec.section)
      : source.rows;
    const cols = spec.columns.map((col) => ({ ...col, index: at[col.key] }));
    const warnAt = at.warning;
    const state = { tabs: {}, query: "", onlyWarned: false, sortKey: null, dir: 1, page: 0 };
    let haystack = null; /* lower-case text of each row, built on first filter */
    let view = rows;

    const table = block.querySelector("table");
    const tbody = table.tBodies[0];
    const status = block.querySelector(".pager .status");
    const headerRow = document.createElement("tr");
    const headers = cols.map((col) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.className = col.kind;
      th.setAttribute("aria-sort", "none");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = col.label;
      button.addEventListener("click", () => sortBy(col));
      th.append(button);
      headerRow.append(th);
      return th;
    });
    table.tHead.append(headerRow);

    function matches(row, k, query) {
      if (state.onlyWarned && !row[warnAt]) return false;
      for (const [key, value] of Object.entries(state.tabs)) {
        if (value !== null && row[at[key]] !== value) return false;
      }
      return !query || haystack[k].includes(query);
    }

    function compare(col) {
      const i = col.index;
      const numeric = col.kind === "size" || col.kind === "int";
      return (a, b) => {
        const x = a[i];
        const y = b[i];
        const xEmpty = x === null || x === "";
        const yEmpty = y === null || y === "";
        if (xEmpty || yEmpty) return xEmpty === yEmpty ? 0 : xEmpty ? 1 : -1; /* blanks last */
        return state.dir * (numeric ? x - y : collator.compare(x, y));
      };
    }

    function refresh() {
      const query = state.query.trim().toLowerCase();
      if (query && !haystack) {
        haystack = rows.map((row) =>
          cols.map((col) => cellText(row[col.index], col)).join("\u0000").toLowerCase(),
        );
      }
      const out = [];
      for (let k = 0; k < rows.length; k += 1) {
        if (matches(rows[k], k, query)) out.push(rows[k]);
      }
      const sortCol = cols.find((col) => col.key === state.sortKey);
      if (sortCol) out.sort(compare(sortCol));
      view = out;
      state.page = 0;
      render();
    }

    function render() {
      const pages = Math.max(1, Math.ceil(view.length / PAGE_SIZE));
      state.page = Math.min(Math.max(state.page, 0), pages - 1);
      const start = state.page * PAGE_SIZE;
      const slice = view.slice(start, start + PAGE_SIZE);
      const fragment = document.createDocumentFragment();
      for (const row of slice) {
        const tr = document.createElement("tr");
        if (row[warnAt]) tr.className = "warn";
        for (const col of cols) tr.append(makeCell(row[col.index], col));
        fragment.append(tr);
      }
      if (!slice.length) {
        const tr = document.createElement("tr");
        const td = document.createElement("td");
        td.colSpan = cols.length;
        td.className = "none";
        td.textContent = "No matching rows.";
        tr.append(td);
        fragment.append(tr);
      }
      tbody.replaceChildren(fragment);
      const shown = slice.length ? `Rows ${(start + 1).toLocaleString("en-US")}–` +
        `${(start + slice.length).toLocaleString("en-US")} of ` : "0 rows of ";
      const filtered = view.length === rows.length ? "" :
        ` (filtered from ${rows.length.toLocaleString("en-US")})`;
      status.textContent = `${shown}${view.length.toLocaleString("en-US")}${filtered}` +
        ` · page ${state.page + 1} of ${pages}`;
      for (const button of block.querySelectorAll(".pager button")) {
        const back = button.dataset.page === "first" || button.dataset.page === "prev";
        button.disabled = back ? state.page === 0 : state.page >= pages - 1;
      }
    }

    function sortBy(col) {
      state.dir = state.sortKey === col.key ? -state.dir : 1;
      state.sortKey = col.key;
      headers.forEach((th, k) => {
        const on = cols[k].key === col.key;
        th.setAttribute("aria-sort", on ? (state.dir > 0 ? "ascending" : "descending") : "none");
      });
      refresh();
    }

    function selectTab(list, tab) {
      for (const other of list.querySelectorAll("[role=tab]")) {
        const on = other === tab;
        other.setAttribute("aria-selected", String(on));
        other.tabIndex = on ? 0 : -1;
      }
      state.tabs[list.dataset.key] = tab.hasAttribute("data-all") ? null : tab.dataset.value;
      refresh();
    }

    for (const list of block.querySelectorAll("[role=tablist]")) {
      const tabs = [...list.querySelectorAll("[role=tab]")];
      state.tabs[list.dataset.key] = null;
      list.addEventListener("click", (event) => {
        const tab = event.target.closest("[role=tab]");
        if (tab) selectTab(list, tab);
      });
      list.addEventListener("keydown", (event) => {
        const k = tabs.indexOf(document.activeElement);
        const next = { ArrowRight: k + 1, ArrowLeft: k - 1, Home: 0, End: tabs.length - 1 }[
          event.key
        ];
        if (k < 0 || next === undefined) return;
        event.preventDefault();
        const tab = tabs[(next + tabs.length) % tabs.length];
        tab.focus();
        selectTab(list, tab);
      });
    }

    let timer = null;
    block.querySelector(".filter").addEventListener("input", (event) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        state.query = event.target.value;
        refresh();
      }, 150);
    });
    const onlyWarned = block.querySelector(".only-warned");
    if (onlyWarned) {
      onlyWarned.addEventListener("change", () => {
        state.onlyWarned = onlyWarned.checked;
        refresh();
      });
    }
    block.querySelector(".pager").addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      const pages = Math.ceil(view.length / PAGE_SIZE);
      const target = { first: 0, prev: state.page - 1, next: state.page + 1, last: pages - 1 };
      state.page = target[button.dataset.page];
      render();
    });
    block.querySelector(".download").addEventListener("click", () => {
      const lines = [spec.csv.join(",")];
      for (const row of view) lines.push(spec.csv.map((key) => csvCell(row[at[key]])).join(","));
      download(fileName(id), `${lines.join("\r\n")}\r\n`);
    });
    render();
  }

  /* Charts take their colours from the page, so they follow light and dark mode. */
  function chartTheme() {
    const style = getComputedStyle(document.body);
    const grid = style.getPropertyValue("--line").trim() || "#ccc";
    return {
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: style.color, family: style.fontFamily },
      "xaxis.gridcolor": grid,
      "yaxis.gridcolor": grid,
    };
  }

  function drawCharts() {
    if (!window.Plotly || !DATA.charts.length) return;
    const theme = chartTheme();
    for (const chart of DATA.charts) {
      const layout = structuredClone(chart.layout);
      Object.assign(layout, { paper_bgcolor: theme.paper_bgcolor, plot_bgcolor: theme.plot_bgcolor });
      layout.font = theme.font;
      layout.xaxis.gridcolor = theme["xaxis.gridcolor"];
      layout.yaxis.gridcolor = theme["yaxis.gridcolor"];
      window.Plotly.newPlot(document.getElementById(chart.id), chart.data, layout, {
        responsive: true,
        displaylogo: false,
        modeBarButtonsToRemove: ["select2d", "lasso2d"],
      });
    }
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      const next = chartTheme();
      for (const chart of DATA.charts) {
        window.Plotly.relayout(document.getElementById(chart.id), next);
      }
    });
  }

  for (const block of document.querySelectorAll(".table-block")) setupTable(block);
  drawCharts();
})();
