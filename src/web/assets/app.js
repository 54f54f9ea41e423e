// tradingbot web: the fleet page and one bot's page. Plain script, no
// build step, no third party. Every figure comes from this server's
// /api/fleet or /api/bot/NAME, asked again as soon as an answer arrives
// (?wait= holds the request until something changes), so a new fill or a
// stall shows within a poll of the bot, without a reload. Text from bots
// only ever goes in through textContent.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // el('td', {class: 'num', 'data-field': 'qty'}, 'text', childNode, ...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ---- formats --------------------------------------------------------

  // 0.4 s, 12 s, 3 m 20 s, 2 h 5 m, 3 d 4 h (a zero second part left out).
  function age(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    if (seconds < 10) return seconds.toFixed(1) + ' s';
    if (seconds < 60) return Math.floor(seconds) + ' s';
    const two = (big, bigUnit, small, smallUnit) => big + ' ' + bigUnit + (small ? ' ' + small + ' ' + smallUnit : '');
    if (seconds < 3600) return two(Math.floor(seconds / 60), 'm', Math.floor(seconds % 60), 's');
    if (seconds < 86400) return two(Math.floor(seconds / 3600), 'h', Math.floor((seconds % 3600) / 60), 'm');
    return two(Math.floor(seconds / 86400), 'd', Math.floor((seconds % 86400) / 3600), 'h');
  }
  const money = (x) => (x === null || x === undefined) ? '—'
    : x.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const amount = (x) => (x === null || x === undefined) ? '—'
    : x.toLocaleString('en-US', { maximumFractionDigits: 8 });
  const count = (x) => (x === null || x === undefined) ? '—' : x.toLocaleString('en-US');
  const millis = (seconds) => (seconds === null || seconds === undefined) ? '—'
    : (seconds * 1000).toLocaleString('en-US', { maximumFractionDigits: 2 }) + ' ms';
  const sign = (x) => (x > 0 ? 'pos' : x < 0 ? 'neg' : null);
  // Local time of day, with the date when it is not today.
  function clock(ms) {
    if (typeof ms !== 'number') return '—';
    const date = new Date(ms);
    const pad = (n, w) => String(n).padStart(w || 2, '0');
    const day = date.toDateString() === new Date().toDateString() ? ''
      : date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate()) + ' ';
    return day + pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds())
      + '.' + pad(date.getMilliseconds(), 3);
  }
  const hhmm = (ms) => { const date = new Date(ms); return String(date.getHours()).padStart(2, '0') + ':' + String(date.getMinutes()).padStart(2, '0'); };

  // Ages that keep counting between answers: the server's figure plus
  // the time since it arrived (a heartbeat age does not: it restarts).
  function ticking(seconds) {
    const node = el('span', { class: 'tick' }, age(seconds));
    if (typeof seconds === 'number') {
      node.dataset.base = String(seconds);
      node.dataset.since = String(performance.now());
    }
    return node;
  }
  setInterval(() => {
    const now = performance.now();
    for (const node of document.querySelectorAll('.tick[data-base]')) {
      node.textContent = age(Number(node.dataset.base) + (now - Number(node.dataset.since)) / 1000);
    }
  }, 250);

  // One figure; money is green above zero and red below.
  function figure(label, field, value, text, isMoney) {
    return el('div', { 'data-field': field, 'data-value': typeof value === 'number' ? value : null },
      el('dt', null, label), el('dd', { class: isMoney && typeof value === 'number' ? sign(value) : null }, text));
  }

  // ---- shared pieces of a bot ------------------------------------------

  function verdict(bot) {
    if (bot.state === 'unreachable') return 'unreachable';
    if (bot.state === 'waiting') return 'waiting';
    return bot.status || 'unknown';
  }

  function signalNote(bot) {
    const notes = [];
    if (bot.last_signal_age_seconds === null || bot.last_signal_age_seconds === undefined) notes.push('no signal yet');
    else notes.push('ago');
    if (bot.max_signal_age_seconds) notes.push('max ' + age(bot.max_signal_age_seconds));
    if (bot.state === 'unreachable' && bot.contact_age_seconds !== null) notes.push('as of the last contact');
    else if (bot.signal_level === 'bad' && bot.state === 'up') notes.push('stalled');
    return notes.join(' · ');
  }

  function reasonItems(bot) {
    const items = [];
    if (bot.error) {
      const when = bot.contact_age_seconds === null ? 'never reached'
        : 'last contact ' + age(bot.contact_age_seconds) + ' ago';
      items.push(el('li', { class: 'bad', 'data-field': 'error' }, 'unreachable: ' + bot.error + ' (' + when + ')'));
    }
    for (const reason of bot.reasons || []) {
      items.push(el('li', { class: bot.level === 'bad' ? 'bad' : null }, reason));
    }
    return items;
  }

  // ---- a bot's sources ------------------------------------------------------

  // One row a source: its status (amber quiet or connecting, red down),
  // when it last delivered a message and a signal, its reconnects and its
  // last error.
  function sourceRow(source) {
    const ageCell = (field, seconds) => el('td', { class: 'num', 'data-field': field, 'data-value': seconds },
      seconds === null || seconds === undefined ? '—' : ticking(seconds), seconds === null || seconds === undefined ? '' : ' ago');
    return el('tr', { 'data-source': source.name, 'data-level': source.level },
      el('td', null, source.name),
      el('td', null, source.kind),
      el('td', { 'data-field': 'status', 'data-level': source.level }, el('span', { class: 'badge' }, source.status)),
      ageCell('last_message_age', source.last_message_age_seconds),
      ageCell('last_signal_age', source.last_signal_age_seconds),
      el('td', { class: 'num', 'data-field': 'reconnects', 'data-value': source.reconnects }, count(source.reconnects)),
      el('td', { class: 'wrap', 'data-field': 'last_error' }, source.last_error || ''));
  }

  function sourceRows(bot) {
    const sources = bot.sources || [];
    if (!sources.length) return [el('tr', null, el('td', { colspan: 7, class: 'empty' }, 'no sources reported'))];
    return sources.map(sourceRow);
  }

  // The fleet card's line: each source's name, coloured by its status.
  function sourceChips(bot) {
    return el('ul', { class: 'sources', 'data-field': 'sources' }, ...(bot.sources || []).map((source) =>
      el('li', { 'data-source': source.name, 'data-level': source.level, title: source.kind + ': ' + source.status },
        el('span', { class: 'badge' }, source.name + ' ' + source.status))));
  }

  function perMinute(bot, key) {
    return bot.per_minute ? bot.per_minute[key] : null;
  }

  // ---- following the server ---------------------------------------------

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function setLink(up, why) {
    const link = $('link');
    link.dataset.state = up ? 'up' : 'down';
    link.textContent = up ? 'live · ' + new Date().toLocaleTimeString() : 'dashboard unreachable (' + why + '), retrying…';
  }

  // Asks `path` again and again; `render` gets each answer and returns
  // the query to send next (besides ?wait=).
  async function follow(path, render) {
    let revision = null;
    let query = {};
    let failures = 0;
    for (;;) {
      const params = new URLSearchParams(query);
      if (revision !== null) params.set('wait', revision);
      try {
        const response = await fetch(path + '?' + params, { cache: 'no-store', credentials: 'same-origin' });
        if (!response.ok) throw new Error('HTTP ' + response.status);
        const data = await response.json();
        revision = data.revision;
        query = render(data) || {};
        setLink(true);
        failures = 0;
        // At most a few answers a second, however busy the fleet.
        await sleep(150);
      } catch (error) {
        setLink(false, error.message);
        revision = null;
        failures += 1;
        await sleep(Math.min(5000, 250 * 2 ** failures));
      }
    }
  }

  // ---- the fleet page ------------------------------------------------------

  function card(bot) {
    const signal = el('div', { class: 'signal', 'data-field': 'signal', 'data-level': bot.signal_level },
      el('span', { class: 'label' }, 'last signal'),
      el('span', { class: 'big', 'data-field': 'last_signal_age', 'data-value': bot.last_signal_age_seconds },
        ticking(bot.last_signal_age_seconds)),
      el('span', { class: 'note' }, signalNote(bot)));
    const figures = el('dl', { class: 'figs' },
      figure('heartbeat', 'heartbeat_age', bot.heartbeat_age_seconds, age(bot.heartbeat_age_seconds)),
      figure('uptime', 'uptime', bot.uptime_seconds, ticking(bot.uptime_seconds)),
      figure('positions', 'positions', bot.positions ? bot.positions.length : null, count(bot.positions ? bot.positions.length : null)),
      figure('signals / min', 'signals_per_minute', perMinute(bot, 'signals'), count(perMinute(bot, 'signals'))),
      figure('fills / min', 'fills_per_minute', perMinute(bot, 'fills'), count(perMinute(bot, 'fills'))),
      figure('rejects / min', 'rejects_per_minute', perMinute(bot, 'rejects'), count(perMinute(bot, 'rejects'))),
      figure('realized PnL', 'realized_pnl', bot.realized_pnl, money(bot.realized_pnl), true),
      figure('cash', 'cash', bot.cash, money(bot.cash)),
      figure('fsync p99', 'fsync_p99', bot.fsync_seconds ? bot.fsync_seconds.p99 : null,
        millis(bot.fsync_seconds ? bot.fsync_seconds.p99 : null)));
    return el('article', { class: 'card', 'data-bot': bot.name, 'data-level': bot.level, 'data-state': bot.state },
      el('header', { 'data-level': bot.level },
        el('a', { href: '/bot/' + encodeURIComponent(bot.name) }, bot.name),
        el('span', { class: 'badge', 'data-field': 'verdict' }, verdict(bot)),
        el('span', { class: 'when quiet' }, bot.version ? 'v' + bot.version : '')),
      signal,
      el('ul', { class: 'reasons' }, ...reasonItems(bot)),
      sourceChips(bot),
      figures);
  }

  function fleetPage() {
    const main = $('fleet');
    follow('/api/fleet', (data) => {
      const cards = data.bots.map(card);
      main.replaceChildren(...cards);
      const bad = data.bots.filter((bot) => bot.level === 'bad').length;
      document.title = (bad ? '(' + bad + ' red) ' : '') + 'tradingbot fleet';
    });
  }

  // ---- one bot's page ---------------------------------------------------------

  const MAX_ROWS = 200;

  function tradeRow(trade) {
    const fill = trade.type === 'fill';
    return el('tr', { class: trade.type, 'data-seq': trade.seq, 'data-id': trade.id },
      el('td', null, clock(trade.at)),
      el('td', { class: 'num' }, trade.seq),
      el('td', null, trade.type),
      el('td', null, trade.id === null ? '—' : trade.id),
      el('td', null, fill ? trade.symbol : ''),
      el('td', null, fill ? trade.side : ''),
      el('td', { class: 'num', 'data-value': trade.qty }, fill ? amount(trade.qty) : ''),
      el('td', { class: 'num', 'data-value': trade.price }, fill ? amount(trade.price) : ''),
      el('td', { class: 'wrap' }, fill ? '' : (trade.reason || '') + (trade.detail ? ': ' + trade.detail : '')),
      el('td', null, trade.src || ''));
  }

  function positionRow(position) {
    return el('tr', { 'data-symbol': position.symbol },
      el('td', null, position.symbol),
      el('td', { class: 'num', 'data-field': 'qty', 'data-value': position.qty }, amount(position.qty)),
      el('td', { class: 'num', 'data-field': 'avg_price', 'data-value': position.avg_price }, amount(position.avg_price)),
      el('td', { class: 'num', 'data-field': 'last_price', 'data-value': position.last_price }, amount(position.last_price)),
      el('td', { class: 'num ' + (sign(position.realized_pnl) || ''), 'data-field': 'realized_pnl', 'data-value': position.realized_pnl },
        money(position.realized_pnl)),
      el('td', { class: 'num', 'data-field': 'cash', 'data-value': position.cash }, money(position.cash)));
  }

  // A small SVG chart: a line, or bars; time runs left to right. `bars`
  // and `fromZero` charts start at zero.
  function chart(svg, series, key, bars, fromZero, format) {
    const ns = 'http://www.w3.org/2000/svg';
    const node = (tag, attrs, text) => {
      const made = document.createElementNS(ns, tag);
      for (const [name, value] of Object.entries(attrs)) made.setAttribute(name, String(value));
      if (text !== undefined) made.textContent = text;
      return made;
    };
    const width = svg.clientWidth || 600;
    const height = svg.clientHeight || 160;
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    const points = series.filter((point) => typeof point[key] === 'number');
    if (!points.length) {
      svg.replaceChildren(node('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'none' }, 'no data yet'));
      return;
    }
    const left = 64, right = 8, top = 8, bottom = 20;
    const values = points.map((point) => point[key]);
    const zero = bars || fromZero;
    let low = Math.min(...values, zero ? 0 : Infinity);
    let high = Math.max(...values, zero ? 0 : -Infinity);
    if (low === high) {
      const pad = Math.abs(high) / 10 || 1;
      if (!zero) low -= pad;
      high += pad;
    }
    const first = points[0].t;
    const last = Math.max(points[points.length - 1].t, first + 60000);
    const x = (t) => left + (t - first) / (last - first) * (width - left - right);
    const y = (v) => top + (high - v) / (high - low) * (height - top - bottom);
    const parts = [
      node('line', { x1: left, x2: width - right, y1: y(high), y2: y(high), class: 'axis' }),
      node('line', { x1: left, x2: width - right, y1: y(low), y2: y(low), class: 'axis' }),
      node('text', { x: left - 6, y: y(high) + 4, 'text-anchor': 'end', class: 'tick' }, format(high)),
      node('text', { x: left - 6, y: y(low) + 4, 'text-anchor': 'end', class: 'tick' }, format(low)),
      node('text', { x: left, y: height - 4, class: 'tick' }, hhmm(first)),
      node('text', { x: width - right, y: height - 4, 'text-anchor': 'end', class: 'tick' }, hhmm(points[points.length - 1].t)),
    ];
    if (low < 0 && high > 0) parts.push(node('line', { x1: left, x2: width - right, y1: y(0), y2: y(0), class: 'axis' }));
    if (bars) {
      const slot = Math.max(2, (width - left - right) / Math.max(points.length, (last - first) / 10000) - 1);
      for (const point of points) {
        const top = y(Math.max(point[key], 0));
        parts.push(node('rect', { x: x(point.t), y: top, width: slot, height: Math.max(0, y(0) - top), class: 'bar' }));
      }
    } else if (points.length === 1) {
      parts.push(node('circle', { cx: x(first), cy: y(values[0]), r: 3, class: 'dot' }));
    } else {
      const path = points.map((point, index) => (index ? 'L' : 'M') + x(point.t).toFixed(1) + ' ' + y(point[key]).toFixed(1));
      parts.push(node('path', { d: path.join(' '), class: 'line' }));
    }
    svg.replaceChildren(...parts);
  }

  function botPage() {
    const name = decodeURIComponent(location.pathname.slice('/bot/'.length));
    document.title = name + ' · tradingbot';
    $('name').textContent = name;
    const body = $('trades').tBodies[0];
    let after = null;

    follow('/api/bot/' + encodeURIComponent(name), (bot) => {
      document.title = (bot.level === 'bad' ? '(red) ' : '') + name + ' · tradingbot';
      const header = $('verdict');
      header.textContent = verdict(bot);
      header.dataset.level = bot.level;
      document.body.dataset.level = bot.level;
      document.body.dataset.state = bot.state;
      $('url').textContent = bot.url + (bot.version ? ' · v' + bot.version : '');

      const signal = $('signal');
      signal.dataset.level = bot.signal_level;
      const signalAge = $('signal-age');
      signalAge.dataset.value = bot.last_signal_age_seconds === null ? '' : bot.last_signal_age_seconds;
      signalAge.replaceChildren(ticking(bot.last_signal_age_seconds));
      $('signal-note').textContent = signalNote(bot);
      $('reasons').replaceChildren(...reasonItems(bot));

      const totals = bot.totals || {};
      const fsync = bot.fsync_seconds || {};
      $('figures').replaceChildren(
        figure('heartbeat', 'heartbeat_age', bot.heartbeat_age_seconds, age(bot.heartbeat_age_seconds)),
        figure('uptime', 'uptime', bot.uptime_seconds, ticking(bot.uptime_seconds)),
        figure('signals / min', 'signals_per_minute', perMinute(bot, 'signals'), count(perMinute(bot, 'signals'))),
        figure('fills / min', 'fills_per_minute', perMinute(bot, 'fills'), count(perMinute(bot, 'fills'))),
        figure('rejects / min', 'rejects_per_minute', perMinute(bot, 'rejects'), count(perMinute(bot, 'rejects'))),
        figure('realized PnL', 'realized_pnl', bot.realized_pnl, money(bot.realized_pnl), true),
        figure('cash', 'cash', bot.cash, money(bot.cash)),
        figure('signals', 'signals_total', totals.signals, count(totals.signals)),
        figure('fills', 'fills_total', totals.fills, count(totals.fills)),
        figure('rejects', 'rejects_total', totals.rejects, count(totals.rejects)),
        figure('duplicates', 'duplicates_total', totals.duplicates, count(totals.duplicates)),
        figure('fsync p50', 'fsync_p50', fsync.p50, millis(fsync.p50)),
        figure('fsync p99', 'fsync_p99', fsync.p99, millis(fsync.p99)),
        figure('event stream', 'stream', null, bot.stream.connected ? 'live' : (bot.stream.error || 'reconnecting')));

      $('sources').tBodies[0].replaceChildren(...sourceRows(bot));

      const positions = bot.positions || [];
      $('positions').tBodies[0].replaceChildren(...(positions.length ? positions.map(positionRow)
        : [el('tr', null, el('td', { colspan: 6, class: 'empty' }, 'no positions'))]));

      chart($('chart-pnl'), bot.series, 'pnl', false, false, money);
      chart($('chart-fills'), bot.series, 'fills_per_minute', true, true, count);
      chart($('chart-fsync'), bot.series, 'fsync_p99', false, true, millis);

      // The table: new rows on top; the whole table again when the
      // server cannot continue it from our last row.
      if (bot.reset) {
        body.replaceChildren();
        after = null;
      }
      for (const row of body.querySelectorAll('tr:not([data-seq])')) row.remove();
      for (const trade of bot.trades) {
        const row = tradeRow(trade);
        if (!bot.reset) row.classList.add('fresh');
        body.prepend(row);
        after = Math.max(after === null ? 0 : after, trade.seq);
      }
      while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
      if (!body.rows.length) body.append(el('tr', null, el('td', { colspan: 10, class: 'empty' }, 'no fills or rejects yet')));
      $('trades-note').textContent = 'latest ' + Math.min(body.querySelectorAll('tr[data-seq]').length, MAX_ROWS) + ', live';
      if (bot.reset && after === null) after = 0;
      return after === null ? {} : { after };
    });
  }

  if (document.body.dataset.page === 'fleet') fleetPage();
  else botPage();
})();
