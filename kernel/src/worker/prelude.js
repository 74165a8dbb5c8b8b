// The worker's prelude: evaluated once per Context before any untrusted code, it builds the
// globals agent code sees (`mcp`, `console`, `ToolError`), wraps the sources of time and
// randomness to record their use, and returns the helpers the Rust side calls, `lockdown`
// among them: the worker calls it once the globals are defined, and from then on the global
// object and every intrinsic are frozen. It also captures the built-ins it needs up front.
(function (emit, hostCall, sleep, parseJson, isSkillName, checkSkill, compileSkill, freezeReachable) {
  'use strict';
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const isArray = Array.isArray;
  const toStr = Object.prototype.toString;
  const MapC = Map;
  const ErrorC = Error;
  const TypeErrorC = TypeError;
  const RangeErrorC = RangeError;
  const SyntaxErrorC = SyntaxError;
  const StringC = String;
  const fnToString = Function.prototype.toString;
  const apply = Reflect.apply;
  const rGet = Reflect.get;
  const rSet = Reflect.set;
  const rHas = Reflect.has;
  const rOwnKeys = Reflect.ownKeys;
  const rDefine = Reflect.defineProperty;
  const rDelete = Reflect.deleteProperty;
  const rDescriptor = Reflect.getOwnPropertyDescriptor;
  const hasOwn = Object.hasOwn;
  const objectKeys = Object.keys;
  const defineProperty = Object.defineProperty;
  const freeze = Object.freeze;
  const getPrototypeOf = Reflect.getPrototypeOf;
  const ObjectProto = Object.prototype;

  // JSON.stringify with the engine's own semantics (toJSON, getters, Date, NaN -> null), plus
  // errors that name the path of a BigInt, a cycle, or nesting deeper than `maxDepth`. The
  // replacer runs before the engine recurses into a value, so a deep value is refused before
  // it can exhaust the native stack.
  function serialize(value, maxDepth, what) {
    const depth = new MapC();
    const parent = new MapC();
    const step = new MapC();
    // The path of holder[key], built only when an error needs it, shortened for messages.
    const pathOf = (holder, key) => {
      if (!depth.has(holder)) return what;
      const steps = [isArray(holder) ? `[${key}]` : `.${key}`];
      for (let h = holder; parent.has(h); h = parent.get(h)) steps.push(step.get(h));
      const p = what + steps.reverse().join('');
      return p.length > 120 ? `${p.slice(0, 50)}…${p.slice(-50)}` : p;
    };
    const out = stringify(value, function (key, val) {
      const root = !depth.has(this);
      if (typeof val === 'bigint') {
        throw new TypeErrorC(`${pathOf(this, key)} is a BigInt, which JSON cannot represent; convert it with String() or Number()`);
      }
      if (val !== null && typeof val === 'object') {
        const d = root ? 0 : depth.get(this) + 1;
        if (d >= maxDepth) {
          throw new RangeErrorC(`${pathOf(this, key)} is nested more than ${maxDepth} levels deep`);
        }
        for (let h = root ? undefined : this; h !== undefined; h = parent.get(h)) {
          if (h === val) {
            const target = parent.has(val) ? pathOf(parent.get(val), step.get(val).replace(/^\.|^\[|\]$/g, '')) : what;
            throw new TypeErrorC(`${pathOf(this, key)} is a cycle: it refers back to ${target}`);
          }
        }
        depth.set(val, d);
        if (!root) {
          parent.set(val, this);
          step.set(val, isArray(this) ? `[${key}]` : `.${key}`);
        }
      }
      return val;
    });
    return out === undefined ? 'null' : out;
  }

  function format(v) {
    switch (typeof v) {
      case 'string': return v;
      case 'undefined': return 'undefined';
      case 'function': return `[Function: ${v.name || '(anonymous)'}]`;
      case 'symbol': return v.toString();
      case 'bigint': return `${v}n`;
      case 'object': {
        if (v === null) return 'null';
        if (v instanceof ErrorC) {
          return typeof v.stack === 'string' && v.stack ? `${v.name}: ${v.message}\n${v.stack}` : `${v.name}: ${v.message}`;
        }
        try { return serialize(v, 64, 'value'); } catch (_) { return toStr.call(v); }
      }
      default: return StringC(v);
    }
  }

  // [name, message, stack] of a rejection value, whatever was thrown.
  function describe(e) {
    if (e !== null && (typeof e === 'object' || typeof e === 'function')) {
      let name, message, stack;
      try { name = e.name; message = e.message; stack = e.stack; } catch (_) { /* hostile getter */ }
      return [
        typeof name === 'string' && name !== '' ? name : 'Error',
        typeof message === 'string' ? message : format(e),
        typeof stack === 'string' && stack !== '' ? stack : undefined,
      ];
    }
    return ['Error', `uncaught ${typeof e === 'string' ? stringify(e) : format(e)}`, undefined];
  }

  const console = {};
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    console[level] = function (...args) {
      let line = '';
      for (let i = 0; i < args.length; i++) line += (i ? ' ' : '') + format(args[i]);
      emit(level, line);
    };
  }

  // `console.table(data, columns?)`: rows (array elements or own keys) as a text table with an
  // `(index)` column, one log line; values as `console.log` shows them. Anything that is not
  // an object is logged as `console.log` would.
  // At most TABLE_MAX_ROWS rows and TABLE_MAX_COLUMNS columns are shown (a line says how many
  // were left out), so the work is bounded before the log budget cuts the text.
  const TABLE_MAX_ROWS = 200;
  const TABLE_MAX_COLUMNS = 20;
  console.table = function (data, columns) {
    if (data === null || typeof data !== 'object') return console.log(data);
    const allKeys = objectKeys(data);
    const keys = allKeys.slice(0, TABLE_MAX_ROWS);
    const cols = [];
    const seen = new Set();
    if (isArray(columns)) {
      for (let i = 0; i < columns.length; i++) cols.push(String(columns[i]));
    } else {
      for (let i = 0; i < keys.length; i++) {
        const row = data[keys[i]];
        if (row === null || typeof row !== 'object') continue;
        const rk = objectKeys(row);
        for (let j = 0; j < rk.length && cols.length < TABLE_MAX_COLUMNS; j++) if (!seen.has(rk[j])) { seen.add(rk[j]); cols.push(rk[j]); }
      }
    }
    if (cols.length > TABLE_MAX_COLUMNS) cols.length = TABLE_MAX_COLUMNS;
    const header = ['(index)', ...cols];
    let scalars = false;
    const rows = [];
    for (let i = 0; i < keys.length; i++) {
      const row = data[keys[i]];
      const cells = [keys[i]];
      if (row !== null && typeof row === 'object') {
        for (let j = 0; j < cols.length; j++) cells.push(hasOwn(row, cols[j]) ? format(row[cols[j]]) : '');
        if (!isArray(columns) && scalars) cells.push('');
      } else {
        scalars = true;
        for (let j = 0; j < cols.length; j++) cells.push('');
        cells.push(format(row));
      }
      rows.push(cells);
    }
    if (scalars) header.push('Values');
    const widths = header.map((h, c) => rows.reduce((w, r) => Math.max(w, (r[c] || '').length), h.length));
    const line = (cells) => widths.map((w, c) => (cells[c] || '').padEnd(w)).join(' | ');
    let out = line(header) + '\n' + widths.map((w) => '-'.repeat(w)).join('-|-');
    for (let i = 0; i < rows.length; i++) out += '\n' + line(rows[i]);
    if (allKeys.length > keys.length) out += `\n… ${allKeys.length - keys.length} more rows`;
    emit('log', out);
  };

  // `JSON.parse` of a value that is already an object (a tool call's result, which arrives
  // parsed) fails on "[object Object]"; its SyntaxError then says so. Any other input keeps
  // the engine's behaviour and message.
  JSON.parse = {
    parse(text, reviver) {
      if (text === null || typeof text !== 'object') return apply(parse, JSON, [text, reviver]);
      // An object: its text may not parse. Errors the reviver throws pass through as they are.
      let fromReviver = false;
      const revive = typeof reviver !== 'function' ? reviver : function (key, value) {
        try {
          return apply(reviver, this, [key, value]);
        } catch (e) {
          fromReviver = true;
          throw e;
        }
      };
      try {
        return apply(parse, JSON, [text, revive]);
      } catch (e) {
        if (!fromReviver && e instanceof SyntaxErrorC) {
          throw new SyntaxErrorC(`${e.message} — JSON.parse was given an object, not JSON text: it is already parsed (tool calls resolve to parsed values), so use it as it is`);
        }
        throw e;
      }
    },
  }.parse;

  // `URLSearchParams`, which boa_runtime 0.22 lacks: the WHATWG class over a list of
  // [name, value] pairs, parsed and serialised as application/x-www-form-urlencoded (`+` for
  // space). `url.searchParams` gives a copy of `url.search`: changing it does not change the URL.
  const replaceAllC = StringC.prototype.replaceAll;
  const encodeC = encodeURIComponent;
  const utf8 = new TextEncoder();
  const fromUtf8 = new TextDecoder();
  const hexValue = (b) => (b >= 48 && b <= 57 ? b - 48 : b >= 65 && b <= 70 ? b - 55 : b >= 97 && b <= 102 ? b - 87 : -1);
  // application/x-www-form-urlencoded parsing: `+` is a space, each valid `%XX` a byte, any
  // other `%` stays as it is, and the bytes are read as UTF-8 with U+FFFD for invalid runs.
  const formDecode = (t) => {
    const spaced = apply(replaceAllC, t, ['+', ' ']);
    if (spaced.indexOf('%') < 0) return spaced;
    const bytes = utf8.encode(spaced);
    const out = new Uint8Array(bytes.length);
    let n = 0;
    for (let i = 0; i < bytes.length; i++) {
      const hi = bytes[i] === 37 && i + 2 < bytes.length ? hexValue(bytes[i + 1]) : -1;
      const lo = hi >= 0 ? hexValue(bytes[i + 2]) : -1;
      if (lo >= 0) {
        out[n++] = hi * 16 + lo;
        i += 2;
      } else {
        out[n++] = bytes[i];
      }
    }
    return fromUtf8.decode(out.subarray(0, n));
  };
  // Names and values are USVStrings: a lone surrogate becomes U+FFFD, so serialising never
  // throws.
  const usv = (v) => {
    const text = StringC(v);
    return typeof text.toWellFormed === 'function' ? text.toWellFormed() : text;
  };
  const formEncode = (t) => apply(replaceC, encodeC(t), [/%20|[!'()~]/g, (c) => (c === '%20' ? '+' : `%${c.charCodeAt(0).toString(16).toUpperCase()}`)]);
  const parseQuery = (init) => {
    const list = [];
    let text = usv(init);
    if (text.startsWith('?')) text = text.slice(1);
    for (const part of text.split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      list.push(eq < 0 ? [formDecode(part), ''] : [formDecode(part.slice(0, eq)), formDecode(part.slice(eq + 1))]);
    }
    return list;
  };
  const pairsOf = new WeakMap();
  // The URL a `url.searchParams` object belongs to: its changes are written back to it.
  const ownerOf = new WeakMap();
  const listOf = (self) => {
    const list = pairsOf.get(self);
    if (list === undefined) throw new TypeErrorC('not a URLSearchParams');
    return list;
  };
  const serializeQuery = (list) => list.map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`).join('&');
  const changed = (self) => {
    const url = ownerOf.get(self);
    if (url !== undefined) url.search = serializeQuery(listOf(self));
  };
  class URLSearchParams {
    constructor(init = '') {
      let list = [];
      if (init !== null && (typeof init === 'object' || typeof init === 'function')) {
        if (pairsOf.has(init)) {
          list = listOf(init).map(([k, v]) => [k, v]);
        } else if (typeof init[Symbol.iterator] === 'function') {
          for (const pair of init) {
            if (pair === null || typeof pair !== 'object') throw new TypeErrorC('URLSearchParams: each pair must be an array of two items');
            const p = [...pair];
            if (p.length !== 2) throw new TypeErrorC('URLSearchParams: each pair must have exactly two items');
            list.push([usv(p[0]), usv(p[1])]);
          }
        } else {
          for (const k of objectKeys(init)) list.push([usv(k), usv(init[k])]);
        }
      } else {
        list = parseQuery(init);
      }
      pairsOf.set(this, list);
    }
    get size() { return listOf(this).length; }
    get [Symbol.toStringTag]() { return 'URLSearchParams'; }
    append(name, value) { listOf(this).push([usv(name), usv(value)]); changed(this); }
    delete(name, value) {
      const list = listOf(this);
      const n = usv(name);
      const v = value === undefined ? undefined : usv(value);
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i][0] === n && (v === undefined || list[i][1] === v)) list.splice(i, 1);
      }
      changed(this);
    }
    get(name) {
      const n = usv(name);
      const found = listOf(this).find((p) => p[0] === n);
      return found === undefined ? null : found[1];
    }
    getAll(name) { const n = usv(name); return listOf(this).filter((p) => p[0] === n).map((p) => p[1]); }
    has(name, value) {
      const n = usv(name);
      const v = value === undefined ? undefined : usv(value);
      return listOf(this).some((p) => p[0] === n && (v === undefined || p[1] === v));
    }
    set(name, value) {
      const list = listOf(this);
      const n = usv(name);
      const i = list.findIndex((p) => p[0] === n);
      if (i < 0) {
        list.push([n, usv(value)]);
      } else {
        list[i][1] = usv(value);
        for (let j = list.length - 1; j > i; j--) if (list[j][0] === n) list.splice(j, 1);
      }
      changed(this);
    }
    sort() { listOf(this).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); changed(this); }
    forEach(fn, thisArg) { for (const [k, v] of listOf(this)) apply(fn, thisArg, [v, k, this]); }
    *entries() { for (const [k, v] of listOf(this)) yield [k, v]; }
    *keys() { for (const [k] of listOf(this)) yield k; }
    *values() { for (const [, v] of listOf(this)) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return serializeQuery(listOf(this)); }
  }
  // `url.searchParams`: one object per URL, live both ways: its changes set `url.search`, and
  // a change of `url.search` (or `href`) is read back on the next access.
  const paramsOf = new WeakMap();
  if (typeof URL === 'function') {
    defineProperty(URL.prototype, 'searchParams', {
      get() {
        const search = this.search;
        let params = paramsOf.get(this);
        if (params === undefined) {
          params = new URLSearchParams(search);
          paramsOf.set(this, params);
          ownerOf.set(params, this);
        } else {
          const list = listOf(params);
          const current = serializeQuery(list);
          if ((current === '' ? '' : `?${current}`) !== search) {
            const fresh = parseQuery(search);
            list.length = 0;
            for (let i = 0; i < fresh.length; i++) list.push(fresh[i]);
          }
        }
        return params;
      },
      enumerable: true,
      configurable: true,
    });
  }

  class ToolError extends ErrorC {
    constructor(message, server, tool) {
      super(message);
      this.name = 'ToolError';
      if (server !== undefined) this.server = server;
      if (tool !== undefined) this.tool = tool;
    }
  }

  // Host-call arguments take the engine's plain JSON.stringify (measured here: the guarded
  // serialiser costs ~25 µs a call); only when that throws does the guarded one run, to name
  // the BigInt or the cycle. Nesting is bounded by the worker's parse of the call (128 levels).
  function encode(op) {
    let json;
    try { json = stringify(op); } catch (_) { return serialize(op, 64, 'arguments'); }
    return json;
  }

  async function host(op) {
    try {
      return await hostCall(encode(op));
    } catch (e) {
      let message = e instanceof ErrorC ? e.message : StringC(e);
      // Errors raised before the call left the worker get the same `server.tool: ` prefix as
      // the supervisor's.
      const where = op.op === 'call_tool' ? `${op.server}.${op.tool}: ` : '';
      if (!message.startsWith(where)) message = where + message;
      throw new ToolError(message, op.server === null ? undefined : op.server, op.tool);
    }
  }

  const DETAILS = ['names', 'signatures', 'full'];
  function options(where, value, allowed) {
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || isArray(value)) throw new TypeErrorC(`${where}: options must be an object`);
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) throw new TypeErrorC(`${where}: unknown option \`${key}\` (expected ${allowed.join(', ')})`);
    }
    if (value.server !== undefined && typeof value.server !== 'string') throw new TypeErrorC(`${where}: \`server\` must be a string`);
    if (value.detail !== undefined && !DETAILS.includes(value.detail)) {
      throw new TypeErrorC(`${where}: \`detail\` must be one of ${DETAILS.join(', ')}`);
    }
    if (value.limit !== undefined && !(Number.isInteger(value.limit) && value.limit > 0)) {
      throw new TypeErrorC(`${where}: \`limit\` must be a positive integer`);
    }
    return value;
  }

  function callTool(server, tool, args) {
    if (typeof server !== 'string') throw new TypeErrorC('mcp.tools.call: `server` must be a string');
    if (typeof tool !== 'string') throw new TypeErrorC('mcp.tools.call: `tool` must be a string');
    if (args !== undefined && (args === null || typeof args !== 'object' || isArray(args))) {
      throw new TypeErrorC(`${server}.${tool}: \`args\` must be an object`);
    }
    return host({ op: 'call_tool', server, tool, args: args === undefined ? {} : args });
  }

  const tools = {
    list(opts) {
      const o = options('mcp.tools.list', opts, ['server', 'detail']);
      return host({ op: 'list_tools', server: o.server ?? null, detail: o.detail ?? 'signatures' });
    },
    search(query, opts) {
      if (typeof query !== 'string') throw new TypeErrorC('mcp.tools.search: `query` must be a string');
      const o = options('mcp.tools.search', opts, ['server', 'detail', 'limit']);
      return host({ op: 'search_tools', query, server: o.server ?? null, detail: o.detail ?? 'signatures', limit: o.limit ?? null });
    },
    call: callTool,
  };

  const resources = {
    list() { return host({ op: 'list_resources' }); },
    read(uri, opts) {
      if (typeof uri !== 'string') throw new TypeErrorC('mcp.resources.read: `uri` must be a string');
      const o = options('mcp.resources.read', opts, ['server']);
      return host({ op: 'read_resource', uri, server: o.server ?? null });
    },
  };

  // `servers.<server>.<tool>(args)`: any name works, brackets for names that are not
  // identifiers. Unknown servers and tools are reported by the supervisor as ToolErrors.
  // `then` and symbols are not tools, so awaiting `servers.x` does not call anything.
  const ProxyC = Proxy;
  const notATool = (key) => typeof key !== 'string' || key === 'then' || key === 'toJSON';
  // A tool call's promise read as if it were the result (`servers.fs.list_directory(a).filter`)
  // throws a TypeError that says to add `await`, instead of Boa's "not a callable function" one
  // step later. `then`, `catch`, `finally` (bound to the promise, so `await` and `Promise.all`
  // work as before), `constructor` and symbols are the promise's own.
  const promiseKeys = ['then', 'catch', 'finally', 'constructor'];
  const unawaited = (promise, what) => new ProxyC(promise, {
    get(target, key) {
      if (typeof key === 'symbol' || promiseKeys.includes(key)) {
        const value = target[key];
        return typeof value === 'function' ? (...a) => apply(value, target, a) : value;
      }
      throw new TypeErrorC(`${what} returns a Promise: add await, as in (await ${what}).${key}`);
    },
  });
  // Turned into a string (`String(servers)`, a template), the proxies say how to use them
  // instead of calling tools named `toString` and `valueOf` (those stay reachable through
  // `mcp.tools.call`).
  const described = (text) => {
    const say = () => text;
    return (key) => (key === 'toString' || key === 'valueOf' || key === Symbol.toPrimitive ? say : undefined);
  };
  // `base.name`, or `base["name"]` when the name is not an identifier.
  const member = (base, name) => (/^[A-Za-z_$][\w$]*$/.test(name) ? `${base}.${name}` : `${base}[${stringify(name)}]`);
  const serverProxy = (server) => {
    const path = member('servers', server);
    const say = described(`[${path}: call its tools as await ${path}.<tool>(args); list them with await mcp.tools.list({server: ${stringify(server)}})]`);
    return new ProxyC(Object.freeze(Object.create(null)), {
      get(_, tool) {
        const text = say(tool);
        if (text !== undefined) return text;
        // JSON.stringify(servers) shows each server as its description, not an error.
        if (tool === 'toJSON') return say('toString');
        if (notATool(tool)) return undefined;
        return (args) => unawaited(callTool(server, tool, args), `${member(path, tool)}(…)`);
      },
      ownKeys() {
        throw new TypeErrorC(`${path} cannot list its tools synchronously: list them with await mcp.tools.list({server: ${stringify(server)}})`);
      },
    });
  };
  // The upstream server names of the current call (`setServers`, before each call). Like
  // `skills`, `servers` is a read-only Proxy whose names change between calls, so `lockdown`
  // leaves it unfrozen and its traps refuse every write. Listing the names (`Object.keys`,
  // `for…in`, `in`) reads the catalogue: `serversListed` makes the worker record it.
  let serverNames = [];
  let serversListed = false;
  const isServer = (name) => {
    serversListed = true;
    return typeof name === 'string' && serverNames.indexOf(name) >= 0;
  };
  const sayServers = described('[servers: call upstream tools as await servers.<server>.<tool>(args); list them with await mcp.tools.list()]');
  const servers = new ProxyC(Object.create(null), {
    __proto__: null,
    get(_, server) {
      const text = sayServers(server);
      if (text !== undefined) return text;
      return notATool(server) ? undefined : serverProxy(server);
    },
    has(_, server) { return isServer(server); },
    ownKeys() {
      serversListed = true;
      return serverNames.slice();
    },
    getOwnPropertyDescriptor(_, server) {
      if (!isServer(server)) return undefined;
      return { value: serverProxy(server), writable: false, enumerable: true, configurable: true };
    },
    set() { return false; },
    defineProperty() { return false; },
    deleteProperty() { return false; },
    preventExtensions() { return false; },
    setPrototypeOf() { return false; },
  });

  // ---- effects ----
  // What a call did that a cached answer could not reproduce, recorded as it happens and read
  // (and reset) by the worker after each call with `takeEffects`: reading the clock, drawing
  // randomness (or anything else whose answer the engine does not fix: garbage-collection
  // timing through WeakRef and FinalizationRegistry), and starting timers. The wrappers are
  // installed here, before `lockdown` freezes them in place, and keep the originals in this
  // closure, so agent code can neither remove them nor reach the unwrapped functions.
  // Upstream tool calls and other host operations are recorded by the worker itself, where
  // their frames are sent.
  // Objects that a getter returns and nothing else references; `lockdown` freezes them.
  const hiddenByGetters = [];
  let usedTime = false;
  let usedRandom = false;
  let usedTimers = false;
  const ReflectConstruct = Reflect.construct;
  {
    const DateC = Date;
    const dateNow = DateC.now;
    // `Date()` and `new Date()` with no argument read the clock; any argument, even
    // `undefined`, makes `new Date(x)` a pure function of `x`.
    const DateP = new Proxy(DateC, {
      apply(target, thisArg, args) {
        usedTime = true;
        return apply(target, thisArg, args);
      },
      construct(target, args, newTarget) {
        if (args.length === 0) usedTime = true;
        return ReflectConstruct(target, args, newTarget === DateP ? target : newTarget);
      },
    });
    DateC.now = { now() { usedTime = true; return dateNow(); } }.now;
    DateC.prototype.constructor = DateP;
    globalThis.Date = DateP;
    const mathRandom = Math.random;
    Math.random = { random() { usedRandom = true; return mathRandom(); } }.random;
    // `crypto` (its `randomUUID`) is registered natively before the prelude; `performance`
    // does not exist in this engine, and is wrapped as a whole should a build add it.
    for (const name of ['performance', 'crypto']) {
      if (!hasOwn(globalThis, name)) continue;
      const original = globalThis[name];
      // Only this getter holds it, and `lockdown`'s walk does not call getters: it is one of
      // its roots instead, so it is frozen like every other global.
      hiddenByGetters[hiddenByGetters.length] = original;
      const flag = name === 'performance' ? () => { usedTime = true; } : () => { usedRandom = true; };
      defineProperty(globalThis, name, {
        get() { flag(); return original; },
        enumerable: false,
        configurable: true,
      });
    }
    if (typeof WeakRef === 'function') {
      const deref = WeakRef.prototype.deref;
      WeakRef.prototype.deref = { deref() { usedRandom = true; return apply(deref, this, []); } }.deref;
    }
    if (typeof FinalizationRegistry === 'function') {
      const RegistryC = FinalizationRegistry;
      const RegistryP = new Proxy(RegistryC, {
        construct(target, args, newTarget) {
          usedRandom = true;
          return ReflectConstruct(target, args, newTarget === RegistryP ? target : newTarget);
        },
      });
      RegistryC.prototype.constructor = RegistryP;
      globalThis.FinalizationRegistry = RegistryP;
    }
  }

  // Timers: a callback runs as a microtask once its delay has passed; a pending timer keeps
  // the call running (as in Node), so timers count against the call's deadline. A call that
  // starts one depends on time (`usedTimers`); `queueMicrotask` does not.
  const PromiseC = Promise;
  const cancelled = new Set();
  let nextTimer = 0;
  function setTimeout(fn, ms, ...args) {
    if (typeof fn !== 'function') throw new TypeErrorC('setTimeout: the callback must be a function');
    usedTimers = true;
    const id = ++nextTimer;
    sleep(Number(ms) || 0).then(() => {
      if (cancelled.delete(id)) return;
      fn(...args);
    });
    return id;
  }
  function clearTimeout(id) { if (typeof id === 'number' && id > 0 && id <= nextTimer) cancelled.add(id); }
  function queueMicrotask(fn) {
    if (typeof fn !== 'function') throw new TypeErrorC('queueMicrotask: the callback must be a function');
    PromiseC.resolve().then(() => fn());
  }

  const SENTINEL_RE = /\uFDD0(\uFDD0|[0-9a-fA-F]{4})/g;
  const fromCharCode = StringC.fromCharCode;
  const parseIntC = parseInt;
  const replaceC = StringC.prototype.replace;
  const unprotectString = (s) => apply(replaceC, s, [SENTINEL_RE, (_, g) => (g === '\uFDD0' ? g : fromCharCode(parseIntC(g, 16)))]);
  function unprotect(v) {
    if (typeof v === 'string') return unprotectString(v);
    if (v === null || typeof v !== 'object') return v;
    if (isArray(v)) {
      for (let i = 0; i < v.length; i++) v[i] = unprotect(v[i]);
      return v;
    }
    const out = {};
    const keys = objectKeys(v);
    for (let i = 0; i < keys.length; i++) {
      defineProperty(out, unprotectString(keys[i]), { value: unprotect(v[keys[i]]), writable: true, enumerable: true, configurable: true });
    }
    return out;
  }

  // ---- mcp.state ----
  // The committed state is kept per top-level key as JSON text (`committed`, in `order`).
  // `mcp.state` is a Proxy over `target`, which holds every committed key in order with the
  // value UNLOADED until code first reads it; the read parses that key's text alone (natively,
  // no interning), so a call pays only for the keys it touches. The traps record which keys
  // were loaded as objects or written (`dirty`), whether keys were added, deleted or
  // redefined (`structural`), and whether the call read or wrote at all. At commit only the
  // dirty keys are serialised and compared with their committed text; afterwards every such
  // key is UNLOADED again, so no reference into live state survives the call and every call
  // starts from plain JSON. All built-ins used here are captured at the top of the prelude
  // (and frozen by `lockdown` anyway).
  const UNLOADED = freeze({ __proto__: null });
  const NOT_REPLACED = freeze({ __proto__: null });
  const isObject = (v) => v !== null && (typeof v === 'object' || typeof v === 'function');
  const dict = () => ({ __proto__: null });

  let committed = dict(); // key -> committed JSON text of its value
  let order = []; // committed keys, in the object's order
  const target = {};
  let dirty = dict(); // keys to serialise at commit
  let dirtyList = [];
  let structural = false;
  let stateRead = false;
  let stateWritten = false;
  let replacement = NOT_REPLACED;

  // JSON text -> a fresh value; `parseJson` is native and returns [value, escaped].
  function load(json) {
    const parsed = parseJson(json);
    return parsed[1] ? unprotect(parsed[0]) : parsed[0];
  }
  function markDirty(k) {
    if (dirty[k] !== true) {
      dirty[k] = true;
      dirtyList[dirtyList.length] = k;
    }
  }
  function loaded(t, k) {
    let v = t[k];
    if (v === UNLOADED) {
      v = load(committed[k]);
      t[k] = v;
      if (isObject(v)) markDirty(k);
    }
    return v;
  }
  const handler = {
    __proto__: null,
    get(t, k, receiver) {
      stateRead = true;
      // Only own string keys ever hold UNLOADED. This trap runs on every access: keep it short.
      const v = rGet(t, k, receiver);
      return v === UNLOADED ? loaded(t, k) : v;
    },
    set(t, k, v) {
      stateWritten = true;
      if (typeof k === 'string') {
        if (!hasOwn(t, k)) structural = true;
        markDirty(k);
        // A key, as JSON.parse makes it, not the prototype setter.
        if (k === '__proto__' && !hasOwn(t, k)) return rDefine(t, k, { value: v, writable: true, enumerable: true, configurable: true });
      }
      return rSet(t, k, v);
    },
    has(t, k) {
      stateRead = true;
      return rHas(t, k);
    },
    deleteProperty(t, k) {
      stateWritten = true;
      if (typeof k === 'string') structural = true;
      return rDelete(t, k);
    },
    defineProperty(t, k, desc) {
      stateWritten = true;
      // A key that could not be deleted or reset would outlive a rollback.
      if (desc.configurable === false || (!hasOwn(t, k) && desc.configurable !== true)) return false;
      if (typeof k === 'string') {
        structural = true;
        markDirty(k);
      }
      return rDefine(t, k, desc);
    },
    getOwnPropertyDescriptor(t, k) {
      stateRead = true;
      if (typeof k === 'string' && hasOwn(t, k) && t[k] === UNLOADED) loaded(t, k);
      return rDescriptor(t, k);
    },
    ownKeys(t) {
      stateRead = true;
      return rOwnKeys(t);
    },
    // mcp.state must stay extensible and an ordinary object.
    preventExtensions() { return false; },
    setPrototypeOf() { return false; },
  };
  const stateProxy = new ProxyC(target, handler);

  // Resets `target` to the committed keys, in order, all UNLOADED.
  function rebuildTarget() {
    const keys = rOwnKeys(target);
    for (let i = 0; i < keys.length; i++) rDelete(target, keys[i]);
    for (let i = 0; i < order.length; i++) {
      rDefine(target, order[i], { value: UNLOADED, writable: true, enumerable: true, configurable: true });
    }
  }
  function resetTracking() {
    dirty = dict();
    dirtyList = [];
    structural = false;
    stateRead = false;
    stateWritten = false;
    replacement = NOT_REPLACED;
  }
  function keyPath(k) {
    return /^[A-Za-z_$][\w$]*$/.test(k) ? `mcp.state.${k}` : `mcp.state[${stringify(k)}]`;
  }
  // A value JSON keeps as something else (so the next call gets another thing back), as
  // [what it is, what it becomes]; undefined for plain data. Checked on each committed key's
  // value and its first 64 entries, and reported as a warn log naming the path.
  const lossyKinds = [
    [Map, 'a Map', '{}'], [Set, 'a Set', '{}'], [WeakMap, 'a WeakMap', '{}'], [WeakSet, 'a WeakSet', '{}'],
    [Date, 'a Date', 'its ISO string'], [RegExp, 'a RegExp', '{}'], [Promise, 'a Promise', '{}'],
  ];
  function lossy(v) {
    if (typeof v === 'function') return ['a function', 'nothing (it is dropped)'];
    if (v === null || typeof v !== 'object' || isArray(v)) return undefined;
    const proto = getPrototypeOf(v);
    if (proto === ObjectProto || proto === null) return undefined;
    for (let i = 0; i < lossyKinds.length; i++) {
      if (v instanceof lossyKinds[i][0]) return [lossyKinds[i][1], lossyKinds[i][2]];
    }
    if (v instanceof ErrorC || typeof v.toJSON === 'function') return undefined;
    return ['a class instance', 'a plain object without its prototype or methods'];
  }
  function warnLossy(v, path) {
    const found = [];
    const here = lossy(v);
    if (here !== undefined) found[found.length] = [path, here];
    else if (v !== null && typeof v === 'object') {
      const keys = isArray(v) ? [] : rOwnKeys(v);
      const n = isArray(v) ? v.length : keys.length;
      for (let i = 0; i < n && i < 64; i++) {
        const key = isArray(v) ? i : keys[i];
        if (typeof key === 'symbol') continue;
        const child = lossy(v[key]);
        if (child !== undefined) found[found.length] = [isArray(v) ? `${path}[${i}]` : `${path}.${StringC(key)}`, child];
      }
    }
    for (let i = 0; i < found.length; i++) {
      const [where, [what, becomes]] = found[i];
      emit('warn', `${where} holds ${what}, which mcp.state keeps as JSON: ${becomes}. The next call gets that back; store plain data (Object.fromEntries(map), [...set], date.toISOString()).`);
    }
  }

  // The JSON text of one top-level value, or undefined when JSON omits it (undefined,
  // functions, symbols). Errors name the key.
  function serializeKey(holder, k, maxDepth) {
    let v;
    try {
      v = rGet(holder, k, holder);
    } catch (e) {
      const d = describe(e);
      throw new TypeErrorC(`${keyPath(k)} could not be read: ${d[0]}: ${d[1]}`);
    }
    try { warnLossy(v, keyPath(k)); } catch (_) { /* a getter that throws is reported below */ }
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return undefined;
    // The engine's plain stringify first (several times faster than the guarded serialiser,
    // whose replacer runs for every value); the worker checks the nesting of changed values.
    // Only when it throws does the guarded serialiser run, to name the path of the problem.
    try {
      return stringify(v);
    } catch (_) { /* named below */ }
    try {
      // `serialize` counts the value itself as depth 0; inside the state object it is 1.
      return serialize(v, maxDepth - 1, keyPath(k));
    } catch (e) {
      const d = describe(e);
      throw new TypeErrorC(d[1].startsWith(keyPath(k)) ? `${d[0]}: ${d[1]}` : `${keyPath(k)}: ${d[0]}: ${d[1]}`);
    }
  }
  function isEnumerableString(holder, k) {
    if (typeof k !== 'string') return false;
    const d = rDescriptor(holder, k);
    return d !== undefined && hasOwn(d, 'enumerable') && d.enumerable === true;
  }

  // The pending commit: null when the call changed nothing; else
  // [replace, keys (JSON string literals), values (JSON text, or null for a deleted key), order
  // (JSON string literals, or undefined when the changes applied in order give it), newOrder,
  // newTexts]. The last two are the worker's own, applied by `acceptState`.
  let pending = null;
  function prepareState(maxDepth) {
    pending = null;
    if (replacement === NOT_REPLACED && dirtyList.length === 0 && !structural) return null;
    const keys = [];
    const values = [];
    const texts = dict();
    let newOrder;
    let replace = false;
    if (replacement !== NOT_REPLACED) {
      const s = replacement;
      if (s === null || typeof s !== 'object' || isArray(s)) {
        const kind = s === null ? 'null' : isArray(s) ? 'an array' : typeof s;
        throw new TypeErrorC(`mcp.state must be a plain object, but it is ${kind}`);
      }
      const proto = getPrototypeOf(s);
      if (proto !== ObjectProto && proto !== null) {
        throw new TypeErrorC('mcp.state must be a plain object, but it is an instance of another class (its prototype is not Object.prototype)');
      }
      let own;
      try { own = rOwnKeys(s); } catch (e) {
        const d = describe(e);
        throw new TypeErrorC(`the keys of mcp.state could not be read: ${d[0]}: ${d[1]}`);
      }
      replace = true;
      newOrder = [];
      for (let i = 0; i < own.length; i++) {
        const k = own[i];
        let enumerable;
        try { enumerable = isEnumerableString(s, k); } catch (e) {
          const d = describe(e);
          throw new TypeErrorC(`${keyPath(StringC(k))} could not be read: ${d[0]}: ${d[1]}`);
        }
        if (!enumerable) continue;
        const json = serializeKey(s, k, maxDepth);
        if (json === undefined) continue;
        newOrder[newOrder.length] = k;
        texts[k] = json;
        keys[keys.length] = stringify(k);
        values[values.length] = json;
      }
      pending = [true, keys, values, undefined, newOrder, texts];
      return pending;
    }
    if (structural) {
      const own = rOwnKeys(target);
      newOrder = [];
      for (let i = 0; i < own.length; i++) {
        const k = own[i];
        if (!isEnumerableString(target, k)) continue;
        let json;
        if (target[k] === UNLOADED) {
          json = committed[k];
        } else {
          json = serializeKey(target, k, maxDepth);
          if (json === undefined) continue;
          if (json !== committed[k]) {
            keys[keys.length] = stringify(k);
            values[values.length] = json;
          }
        }
        newOrder[newOrder.length] = k;
        texts[k] = json;
      }
      // Deleted keys, then whether "delete, replace in place, append new" gives the order.
      const expected = [];
      for (let i = 0; i < order.length; i++) {
        const k = order[i];
        if (texts[k] === undefined) {
          keys[keys.length] = stringify(k);
          values[values.length] = null;
        } else {
          expected[expected.length] = k;
        }
      }
      for (let i = 0; i < newOrder.length; i++) {
        if (committed[newOrder[i]] === undefined) expected[expected.length] = newOrder[i];
      }
      let sameOrder = expected.length === newOrder.length;
      for (let i = 0; sameOrder && i < newOrder.length; i++) sameOrder = expected[i] === newOrder[i];
      let orderJson;
      if (!sameOrder) {
        orderJson = [];
        for (let i = 0; i < newOrder.length; i++) orderJson[i] = stringify(newOrder[i]);
      }
      if (keys.length === 0 && sameOrder) return null;
      pending = [false, keys, values, orderJson, newOrder, texts];
      return pending;
    }
    // Only existing keys were loaded or assigned: the order cannot change, but a value that
    // JSON omits (`mcp.state.k = undefined`) deletes its key.
    let deleted = false;
    for (let i = 0; i < dirtyList.length; i++) {
      const k = dirtyList[i];
      const json = serializeKey(target, k, maxDepth);
      if (json === committed[k]) continue;
      if (json === undefined) deleted = true;
      keys[keys.length] = stringify(k);
      values[values.length] = json === undefined ? null : json;
      texts[k] = json === undefined ? null : json;
    }
    if (keys.length === 0) return null;
    if (deleted) {
      newOrder = [];
      for (let i = 0; i < order.length; i++) if (texts[order[i]] !== null) newOrder[newOrder.length] = order[i];
    }
    pending = [false, keys, values, undefined, newOrder, texts];
    return pending;
  }

  // Makes the prepared commit the committed state; every touched key is UNLOADED again.
  function acceptState() {
    if (pending !== null) {
      const replace = pending[0];
      const newOrder = pending[4];
      const texts = pending[5];
      if (newOrder === undefined) {
        for (const k in texts) committed[k] = texts[k];
      } else {
        const next = dict();
        for (let i = 0; i < newOrder.length; i++) {
          const k = newOrder[i];
          next[k] = texts[k] !== undefined && texts[k] !== null ? texts[k] : committed[k];
        }
        committed = next;
        order = newOrder;
      }
      pending = null;
      if (replace || newOrder !== undefined) {
        rebuildTarget();
        resetTracking();
        return;
      }
    }
    discardChanges();
  }

  // Back to the committed state (a failed call, or nothing to commit).
  function discardChanges() {
    pending = null;
    if (replacement !== NOT_REPLACED || structural) {
      rebuildTarget();
    } else {
      for (let i = 0; i < dirtyList.length; i++) {
        const k = dirtyList[i];
        if (committed[k] !== undefined) target[k] = UNLOADED;
      }
    }
    resetTracking();
  }

  // ---- skills ----
  // The library the supervisor sent (`setLibrary`), plus what this worker's own calls saved or
  // deleted since. `skills.<name>` compiles a skill's source on first use (natively, as a
  // script in the global scope named `skills.<name>` in stacks) and keeps the function until
  // the library changes that skill's source; the function and its prototype are frozen, so
  // nothing stored on them outlives a call. Every name a call looks up (that could be a skill)
  // is recorded for the result cache, which keys on the library version when any was.
  const MAX_SKILLS_USED_NAMES = 1024;
  const NAME_RULE = 'it must match ^[A-Za-z_$][A-Za-z0-9_$]{0,63}$';
  let library = dict(); // name -> source text
  let libraryNames = []; // the library's names, in its order
  let compiled = dict(); // name -> its compiled function
  let used = dict();
  let usedList = [];
  function markUsed(name) {
    if (used[name] === true || usedList.length >= MAX_SKILLS_USED_NAMES || !isSkillName(name)) return;
    used[name] = true;
    usedList[usedList.length] = name;
  }
  function skillFunction(name) {
    const source = library[name];
    if (source === undefined) return undefined;
    let fn = compiled[name];
    if (fn === undefined) {
      fn = compileSkill(name, source);
      const proto = hasOwn(fn, 'prototype') ? fn.prototype : undefined;
      if (isObject(proto)) freeze(proto);
      freeze(fn);
      compiled[name] = fn;
    }
    return fn;
  }
  function addSkill(name, source) {
    if (library[name] === undefined) libraryNames[libraryNames.length] = name;
    if (library[name] !== source) delete compiled[name];
    library[name] = source;
  }
  function removeSkill(name) {
    if (library[name] === undefined) return;
    delete library[name];
    delete compiled[name];
    const names = [];
    for (let i = 0; i < libraryNames.length; i++) if (libraryNames[i] !== name) names[names.length] = libraryNames[i];
    libraryNames = names;
  }
  // Replaces the library; a skill whose source is unchanged keeps its compiled function.
  function setLibrary(names, sources) {
    const previous = library;
    const previousCompiled = compiled;
    library = dict();
    libraryNames = [];
    compiled = dict();
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      if (library[name] === undefined) libraryNames[libraryNames.length] = name;
      library[name] = sources[i];
      if (previous[name] === sources[i] && previousCompiled[name] !== undefined) compiled[name] = previousCompiled[name];
    }
  }
  function takeSkillsUsed() {
    const out = usedList;
    used = dict();
    usedList = [];
    return out;
  }

  // `skills.<name>(...args)`: read-only; unknown names are undefined.
  const skillsGlobal = new ProxyC(dict(), {
    __proto__: null,
    get(_, name) {
      if (typeof name !== 'string') return undefined;
      markUsed(name);
      return skillFunction(name);
    },
    has(_, name) {
      if (typeof name !== 'string') return false;
      markUsed(name);
      return library[name] !== undefined;
    },
    ownKeys() {
      const names = [];
      for (let i = 0; i < libraryNames.length; i++) {
        markUsed(libraryNames[i]);
        names[i] = libraryNames[i];
      }
      return names;
    },
    getOwnPropertyDescriptor(_, name) {
      if (typeof name !== 'string') return undefined;
      markUsed(name);
      if (library[name] === undefined) return undefined;
      return { value: skillFunction(name), writable: false, enumerable: true, configurable: true };
    },
    set() { return false; },
    defineProperty() { return false; },
    deleteProperty() { return false; },
    preventExtensions() { return false; },
    setPrototypeOf() { return false; },
  });

  function skillName(where, name) {
    if (typeof name !== 'string') throw new TypeErrorC(`${where}: \`name\` must be a string`);
    if (!isSkillName(name)) {
      // The message shows at most 80 characters of the name.
      const shown = name.length > 80 ? `${stringify(name.slice(0, 80))}…` : stringify(name);
      throw new TypeErrorC(`${where}: the skill name ${shown} is not valid: ${NAME_RULE}`);
    }
    return name;
  }

  const NATIVE_CODE = '{ [native code] }';
  const skillsApi = {
    async save(name, fnOrSource, opts) {
      const where = 'mcp.skills.save';
      skillName(where, name);
      let source;
      const isFunction = typeof fnOrSource === 'function';
      if (isFunction) {
        source = apply(fnToString, fnOrSource, []);
        if (source.endsWith(NATIVE_CODE)) {
          throw new TypeErrorC(`${where}: this function has no source text (a built-in, bound or proxied function); pass the source as a string`);
        }
      } else if (typeof fnOrSource === 'string') {
        source = fnOrSource;
      } else {
        throw new TypeErrorC(`${where}: \`fnOrSource\` must be a function or its source text (a string)`);
      }
      const o = options(where, opts, ['description']);
      if (o.description !== undefined && typeof o.description !== 'string') {
        throw new TypeErrorC(`${where}: \`description\` must be a string`);
      }
      let info;
      try {
        info = checkSkill(name, source);
      } catch (e) {
        // A method's text (`f(x) {…}`) is not an expression; say what to pass instead.
        if (isFunction && e instanceof SyntaxErrorC) {
          throw new SyntaxErrorC(`${e.message} (the function's source text is not a function expression, as a method's or a class's is not; pass \`function (…) {…}\`, an arrow function, or the source as a string)`);
        }
        throw e;
      }
      const reply = await host({ op: 'skill_save', name, source, description: o.description ?? '', params: info.params, tools: info.tools });
      addSkill(name, source);
      return reply;
    },
    async list() {
      return host({ op: 'skill_list' });
    },
    async get(name) {
      return host({ op: 'skill_get', name: skillName('mcp.skills.get', name) });
    },
    async delete(name) {
      const existed = await host({ op: 'skill_delete', name: skillName('mcp.skills.delete', name) });
      removeSkill(name);
      return existed;
    },
  };

  // ---- sessions ----
  const sessions = {
    async list() {
      return host({ op: 'session_list' });
    },
    async close(name) {
      if (typeof name !== 'string' || name === '') throw new TypeErrorC('mcp.sessions.close: `name` must be a non-empty string');
      return host({ op: 'session_close', name });
    },
  };

  // `mcp.progress(fraction, message?)`: tells a client that asked for progress how far the
  // call is (sent as `notifications/progress`, at most one per 100 ms); a no-op otherwise.
  function progress(fraction, message) {
    if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1)) {
      throw new TypeErrorC(`mcp.progress: \`fraction\` must be a number from 0 to 1, got ${typeof fraction === 'number' ? fraction : typeof fraction}`);
    }
    if (message !== undefined && typeof message !== 'string') {
      throw new TypeErrorC(`mcp.progress: \`message\` must be a string when given, got ${message === null ? 'null' : typeof message}`);
    }
    emit('progress', message === undefined ? '' : message, fraction);
  }

  const mcp = { tools, resources, skills: skillsApi, sessions, progress };
  defineProperty(mcp, 'state', {
    get() { return replacement === NOT_REPLACED ? stateProxy : replacement; },
    set(v) {
      stateWritten = true;
      replacement = v === stateProxy ? NOT_REPLACED : v;
    },
    enumerable: true,
    configurable: false,
  });
  freeze(mcp);

  // ---- lockdown ----
  // Nothing but `mcp.state` and skills may outlive a call, so once the worker has defined the
  // globals, `lockdown` freezes, in the manner of SES's `lockdown()`, every object reachable
  // from the global object (own property values, getters and setters, prototypes) plus the
  // intrinsics no global names (the prototypes of async and generator functions, of
  // iterators, %ThrowTypeError%), and the global object itself. Agent code runs in strict
  // mode, so `globalThis.x = 1`, `x = 1` and `Array.prototype.f = …` throw (a TypeError
  // naming the property, or a ReferenceError for an undeclared name).
  //
  // Freezing alone brings the "override mistake": an assignment to an object's own property
  // fails when an inherited property of that name is frozen, so `this.name = 'MyError'` in an
  // Error subclass, or `o.toString = f`, would throw. As SES does, the properties that code
  // commonly overrides this way become accessors: reading gives the original value; assigning
  // through an object that inherits it creates that object's own property, and assigning on
  // the frozen object itself throws as before. Only these few: an accessor costs a function
  // call on every read (so not `Promise.prototype.constructor`, which every `await` of a
  // promise reads).
  const OVERRIDABLE = [
    [Object.prototype, ['constructor', 'toString', 'toLocaleString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable']],
    [Function.prototype, ['constructor', 'toString']],
    [Error.prototype, ['constructor', 'name', 'message', 'toString']],
    [Array.prototype, ['toString']],
    [Iterator.prototype, ['toString']],
  ];
  for (const E of [TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError, AggregateError]) {
    OVERRIDABLE[OVERRIDABLE.length] = [E.prototype, ['constructor', 'name', 'message']];
  }
  function makeOverridable(home, key) {
    const d = rDescriptor(home, key);
    if (d === undefined || !hasOwn(d, 'value') || d.writable !== true) return;
    const value = d.value;
    const shown = typeof key === 'symbol' ? key.toString() : key;
    rDefine(home, key, {
      get: { [shown]() { return value; } }[shown],
      set: {
        [shown](v) {
          if (this === home || !isObject(this)) throw new TypeErrorC(`cannot set non-writable property: ${shown}`);
          if (!rDefine(this, key, { value: v, writable: true, enumerable: true, configurable: true })) {
            throw new TypeErrorC(`cannot define property: ${shown}`);
          }
        },
      }[shown],
      enumerable: d.enumerable,
      configurable: false,
    });
  }
  function lockdown() {
    for (const [home, keys] of OVERRIDABLE) for (const key of keys) makeOverridable(home, key);
    const roots = [
      globalThis,
      ...hiddenByGetters,
      async function () {},
      function* () {},
      async function* () {},
      [][Symbol.iterator](),
      new MapC()[Symbol.iterator](),
      new Set()[Symbol.iterator](),
      ''[Symbol.iterator](),
      /a/[Symbol.matchAll](''),
      (function () { return arguments; })(),
    ];
    if (typeof Iterator === 'function') {
      roots[roots.length] = Iterator.from({ next() { return { done: true }; } });
      if (typeof Iterator.prototype.map === 'function') roots[roots.length] = [].values().map((x) => x);
    }
    // The skills Proxy refuses to be frozen (its traps keep it read-only instead); the
    // library behind it must stay mutable. The walk is native (`freezeReachable`): in
    // JavaScript it took ~10 ms of each worker's start, natively ~2 ms.
    return freezeReachable(roots, skillsGlobal, servers);
  }

  return {
    mcp, servers, skills: skillsGlobal, console, ToolError, setTimeout, clearTimeout, queueMicrotask,
    URLSearchParams,
    lockdown,
    setServers(names) { serverNames = names; },
    // [time, random, timers, servers listed] since the last call of this; resets them.
    takeEffects() {
      const out = [usedTime, usedRandom, usedTimers, serversListed];
      usedTime = false;
      usedRandom = false;
      usedTimers = false;
      serversListed = false;
      return out;
    },
    serialize,
    describe,
    // Replaces the committed state: `keys` are JSON string literals, `values` JSON texts.
    restoreState(keys, values) {
      committed = dict();
      order = [];
      for (let i = 0; i < keys.length; i++) {
        const k = load(keys[i]);
        if (committed[k] === undefined) order[order.length] = k;
        committed[k] = values[i];
      }
      rebuildTarget();
      resetTracking();
    },
    prepareState,
    acceptState,
    discardChanges,
    // [read, written]: whether the call looked at or changed mcp.state in any way.
    stateAccess() { return [stateRead, stateWritten]; },
    // Replaces the skills library: `names` and `sources` are parallel arrays of strings.
    setLibrary,
    // The names the call looked up on `skills`, first use first; resets the record.
    takeSkillsUsed,
  };
})
