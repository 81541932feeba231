// The dashboard page: renders each snapshot the server streams (Server-Sent Events) into the
// tables, and sends power actions when the server allows them. Everything it shows is text set
// through the DOM, never markup: names, messages and Events come from the cluster.
'use strict';

(function () {
  const tokenMeta = document.querySelector('meta[name="dashboard-token"]');
  const token = tokenMeta ? tokenMeta.content : '';
  const byId = (id) => document.getElementById(id);

  // el makes an element: props are attributes (class, text and on* are special), children are
  // nodes or text.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const dash = (s) => (s === undefined || s === null || s === '' ? '—' : String(s));

  function localTime(iso) {
    const d = new Date(iso);
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function timeEl(iso, text) {
    return el('time', { datetime: iso, title: new Date(iso).toLocaleString() }, text);
  }

  function hours(seconds) {
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
    if (m > 0) return `${m} min`;
    return `${seconds} s`;
  }

  // Narrow screens lay the tables' rows out as cards, which drops table semantics in some
  // browsers: the tables carry explicit roles, and each cell the name of its column.
  function tableRoles(table) {
    table.setAttribute('role', 'table');
    for (const group of [table.tHead, ...table.tBodies]) group.setAttribute('role', 'rowgroup');
    for (const row of table.tHead.rows) {
      row.setAttribute('role', 'row');
      for (const th of row.cells) th.setAttribute('role', 'columnheader');
    }
  }

  function labelCells(table, row) {
    const heads = [...table.tHead.rows[0].cells].map((c) => c.textContent);
    let column = 0;
    row.setAttribute('role', 'row');
    for (const cell of row.cells) {
      cell.setAttribute('role', cell.tagName === 'TH' ? 'rowheader' : 'cell');
      if (cell.colSpan === 1) cell.dataset.label = heads[column] || '';
      column += cell.colSpan;
    }
  }

  // fill replaces a table's rows, keeping the keyboard focus on the control it was on.
  function fill(table, rows, columns, empty) {
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : undefined;
    const body = table.tBodies[0];
    if (rows.length === 0) rows = [el('tr', {}, el('td', { colspan: columns }, empty))];
    for (const row of rows) labelCells(table, row);
    body.replaceChildren(...rows);
    if (focused) {
      const again = table.querySelector(`[data-key="${CSS.escape(focused)}"]`);
      if (again && !again.disabled) again.focus();
    }
  }

  const qualified = (snap, ns, name) => (snap.namespace ? name : `${ns}/${name}`);

  function renderGroups(snap) {
    const rows = snap.groups.map((g) => {
      const next = g.nextWindow ? el('span', {}, `${g.nextWindow} in ${g.next}`) : '—';
      const holds = (g.holds || []).map((h) => `${h.name} (${h.reason}${h.window ? ', ' + h.window : ''})`).join(', ');
      return el('tr', { 'data-group': `${g.namespace}/${g.name}` },
        el('th', { scope: 'row' }, qualified(snap, g.namespace, g.name)),
        el('td', { class: 'num' }, g.min), el('td', { class: 'num' }, g.max), el('td', { class: 'num' }, g.target),
        el('td', { class: 'num' }, g.ready), el('td', { class: 'num' }, g.members),
        el('td', {}, dash((g.windows || []).join(', '))), el('td', {}, dash(g.limitedBy)),
        el('td', {}, next), el('td', {}, dash(holds)));
    });
    fill(byId('groups'), rows, 10, 'No Groups.');
  }

  const progressSymbol = { Ready: '✓', Failed: '✗', StartingUp: '↑', ShuttingDown: '↓', Off: '○' };
  const powerName = { PoweredOn: 'On', PoweredOff: 'Off', Unknown: 'Unknown' };

  function timeline(tl) {
    const spans = tl.spans.map((s) => `${s.state} ${localTime(s.from)} to ${localTime(s.to)}`);
    const label = `Last 24 hours: on for ${hours(tl.onSeconds)}. ${spans.join('; ')}.`;
    const bar = el('div', { class: 'timeline', role: 'img', 'aria-label': label, title: label });
    for (const s of tl.spans) {
      const seg = el('span', { class: `seg ${s.state}` });
      seg.style.left = `${s.start}%`;
      seg.style.width = `${s.width}%`;
      bar.append(seg);
    }
    return el('div', { class: 'timeline-cell' }, bar, el('span', { class: 'small' }, `on ${hours(tl.onSeconds)}`));
  }

  function powerButtons(m, key) {
    const name = m.name;
    return el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'power on', 'data-power': 'on', 'data-key': `${key}:on`, 'aria-label': `Power on ${name}`, disabled: m.online }, 'On'),
      el('button', { type: 'button', class: 'power off', 'data-power': 'off', 'data-key': `${key}:off`, 'aria-label': `Power off ${name}`, disabled: !m.online }, 'Off'));
  }

  function renderMachines(snap) {
    byId('power-col').hidden = !snap.allowPower;
    byId('power-result').hidden = !snap.allowPower;
    const rows = snap.machines.map((m) => {
      const key = `${m.namespace}/${m.name}`;
      const power = m.power
        ? el('span', {}, powerName[m.power] || m.power, el('span', { class: 'small' }, ` ${[m.powerSource, m.powerAge ? m.powerAge + ' ago' : ''].filter(Boolean).join(', ')}`))
        : '—';
      const progress = m.progress
        ? el('span', { class: `badge progress-${m.progress}` }, el('span', { 'aria-hidden': 'true' }, `${progressSymbol[m.progress] || '•'} `), m.progress,
          m.repairing ? el('span', { class: 'small' }, ` (repair: ${m.repairing})`) : '')
        : '—';
      const attempts = m.failedBoots ? `${m.attempts} (${m.failedBoots} failed boots)` : String(m.attempts);
      const repair = m.lastRepair ? el('span', { title: m.lastRepair.message }, `${m.lastRepair.kind}, ${m.lastRepair.age} ago`) : '—';
      const cells = [
        el('th', { scope: 'row' }, qualified(snap, m.namespace, m.name)),
        el('td', {}, m.group),
        el('td', {}, el('span', { class: `desired ${m.online ? 'on' : 'off'}` }, m.online ? 'On' : 'Off')),
        el('td', {}, power), el('td', {}, progress), el('td', {}, dash(m.since)),
        el('td', { class: 'num' }, attempts), el('td', {}, dash(m.held)), el('td', {}, repair),
        el('td', { class: 'error' }, dash(m.lastError)), el('td', {}, timeline(m.timeline)),
      ];
      if (snap.allowPower) cells.push(powerButtons(m, key));
      return el('tr', { 'data-machine': key, 'data-progress': m.progress || '', 'data-online': String(m.online), 'data-power': m.power || '' }, cells);
    });
    fill(byId('machines'), rows, snap.allowPower ? 12 : 11, 'No Machines.');
  }

  function renderEnergy(snap) {
    const rows = [];
    for (const g of snap.energy) {
      const name = qualified(snap, g.namespace, g.name);
      for (const [period, f] of [['Today', g.today], ['Last 7 days', g.week]]) {
        const when = f.from === f.to ? `${period} (${f.from})` : `${period} (${f.from} to ${f.to})`;
        const first = [el('th', { scope: 'row' }, name), el('td', {}, when)];
        if (!g.opened) {
          rows.push(el('tr', { 'data-energy': `${g.namespace}/${g.name}` }, first,
            el('td', { colspan: 7 }, 'No member has an energy account yet: the manager opens one at its first status write.')));
          continue;
        }
        rows.push(el('tr', { 'data-energy': `${g.namespace}/${g.name}` }, first,
          el('td', { class: 'num' }, `${g.on} of ${g.members}`),
          el('td', { class: 'num' }, `${g.watts} W`, el('span', { class: 'small' }, ` ${g.wattsSources.join(' + ')}`)),
          el('td', { class: 'num' }, f.text.timeOn), el('td', { class: 'num' }, f.text.used), el('td', { class: 'num' }, f.text.saved),
          el('td', { class: 'num' }, dash(f.text.usedCost)), el('td', { class: 'num' }, dash(f.text.savedCost))));
      }
    }
    fill(byId('energy'), rows, 9, 'No Groups.');
  }

  function renderCloudProvider(snap) {
    const cp = snap.cloudProvider;
    const note = byId('ca-note');
    const wrap = byId('nodegroups-wrap');
    if (!cp.configured) {
      note.textContent = 'Not asked: start the dashboard with --grpc-address (and --grpc-insecure, or --grpc-cert, --grpc-key and --grpc-cacert) to see the node groups the cloud-provider gRPC server reports to cluster-autoscaler.';
      wrap.hidden = true;
    } else if (cp.error) {
      note.textContent = `The cloud-provider gRPC server did not answer: ${cp.error}`;
      wrap.hidden = true;
    } else if (!cp.at) {
      note.textContent = 'Asking the cloud-provider gRPC server…';
      wrap.hidden = true;
    } else {
      note.replaceChildren('As the cloud-provider gRPC server reported at ', timeEl(cp.at, localTime(cp.at)), '.');
      wrap.hidden = false;
      const rows = cp.groups.map((g) => el('tr', { 'data-nodegroup': g.id, 'data-target': g.target, 'data-instances': g.instances.length },
        el('th', { scope: 'row' }, g.id),
        el('td', { class: 'num' }, g.min), el('td', { class: 'num' }, g.max), el('td', { class: 'num' }, g.target),
        el('td', {}, g.instances.length === 0 ? 'none'
          : el('ul', { class: 'plain' }, g.instances.map((i) => el('li', {}, `${i.id}: ${i.state}`, i.error ? ` (${i.error})` : '')))),
        el('td', { class: 'error' }, dash(g.error))));
      fill(byId('nodegroups'), rows, 6, 'No node groups: cluster-autoscaler would have nothing to scale.');
    }
    const ca = snap.caStatus;
    const caNote = byId('ca-status-note');
    const pre = byId('ca-status');
    const name = `${ca.namespace}/${ca.name}`;
    pre.hidden = ca.state !== 'ok';
    caNote.dataset.state = ca.state;
    switch (ca.state) {
      case 'off':
        caNote.textContent = 'Not shown (--ca-status-configmap is empty).';
        break;
      case 'ok':
        caNote.textContent = `${name}, last updated by cluster-autoscaler: ${dash(ca.lastUpdated)}`;
        pre.textContent = ca.status || '(empty)';
        break;
      case 'notFound':
        caNote.textContent = `${name}: not found. cluster-autoscaler writes it once it runs (with --write-status-configmap, its default).`;
        break;
      case 'unreadable':
        caNote.textContent = `${name}: ${ca.message}`;
        break;
      default:
        caNote.textContent = `${name}: loading…`;
    }
  }

  function renderEvents(snap) {
    const note = byId('events-note');
    note.hidden = !snap.eventsProblem;
    note.textContent = snap.eventsProblem ? `Events: ${snap.eventsProblem}` : '';
    const rows = snap.events.map((e) => el('tr', { 'data-event-type': e.type },
      el('td', {}, timeEl(e.time, `${e.age} ago`)),
      el('td', {}, e.type === 'Warning' ? el('span', { class: 'warning' }, el('span', { 'aria-hidden': 'true' }, '⚠ '), 'Warning') : e.type),
      el('td', {}, `${e.kind} ${qualified(snap, e.namespace, e.name)}`),
      el('td', {}, e.reason), el('td', { class: 'note' }, e.note), el('td', { class: 'num' }, e.count)));
    fill(byId('events'), rows, 6, snap.eventsProblem ? 'Not shown.' : 'No Events.');
  }

  function renderProblems(snap) {
    const box = byId('problems');
    box.hidden = snap.problems.length === 0;
    byId('problem-list').replaceChildren(...snap.problems.map((p) => el('li', {}, p)));
  }

  // announce says what changed in the groups, once per change, for screen readers.
  let lastAnnounced = '';
  function announce(snap) {
    const text = snap.groups.map((g) => `${g.name}: ${g.ready} of ${g.members} ready, target ${g.target}`).join('. ');
    if (text !== lastAnnounced) {
      lastAnnounced = text;
      byId('announce').textContent = text;
    }
  }

  let snapshots = 0;
  function render(snap) {
    byId('scope').textContent = snap.namespace ? `Namespace ${snap.namespace}` : 'All namespaces';
    byId('updated').replaceChildren('Updated ', timeEl(snap.at, localTime(snap.at)));
    renderProblems(snap);
    renderGroups(snap);
    renderMachines(snap);
    renderEnergy(snap);
    renderCloudProvider(snap);
    renderEvents(snap);
    announce(snap);
    snapshots++;
    document.body.dataset.snapshots = String(snapshots);
  }

  function setConnection(state, text) {
    document.body.dataset.state = state;
    byId('connection').textContent = text;
  }

  // connect opens the stream. EventSource reconnects by itself after a broken connection; when
  // it gives up (an answer that is not a stream), connect tries again, less and less often.
  let delay = 1000;
  function connect() {
    const source = new EventSource('/api/stream');
    source.addEventListener('snapshot', (ev) => {
      delay = 1000;
      setConnection('live', 'Live');
      render(JSON.parse(ev.data));
    });
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setConnection('reconnecting', `Disconnected: trying again in ${Math.round(delay / 1000)} s`);
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      } else {
        setConnection('reconnecting', 'Reconnecting…');
      }
    });
  }

  function showResult(text, failed) {
    const out = byId('power-result');
    out.textContent = text;
    out.classList.toggle('failed', failed);
  }

  byId('machines').addEventListener('click', async (ev) => {
    const button = ev.target.closest('button[data-power]');
    if (!button || !token) return;
    const [namespace, name] = button.closest('tr').dataset.machine.split('/');
    const online = button.dataset.power === 'on';
    button.disabled = true;
    showResult(`Powering ${name} ${online ? 'on' : 'off'}…`, false);
    try {
      const resp = await fetch('/api/power', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Dashboard-Token': token },
        body: JSON.stringify({ namespace, name, online }),
        cache: 'no-store',
      });
      const body = await resp.json().catch(() => ({}));
      if (resp.ok) {
        showResult(body.message, false);
      } else {
        showResult(`Refused: ${body.error || resp.statusText}`, true);
        button.disabled = false;
      }
    } catch (err) {
      showResult(`The dashboard did not answer: ${err.message}`, true);
      button.disabled = false;
    }
  });

  for (const table of document.querySelectorAll('table.cards')) tableRoles(table);
  connect();
})();
