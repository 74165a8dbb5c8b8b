// The worker's prelude: evaluated once per Context before any untrusted code, it builds the
// globals agent code sees (`mcp`, `console`, `ToolError`) and returns the helpers the Rust side
// calls. It captures the built-ins it needs up front, so agent code that later replaces
// `JSON.stringify` or `Map` affects only itself, never serialisation of results or state.
(function (emit, hostCall, sleep) {
  'use strict';
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const isArray = Array.isArray;
  const toStr = Object.prototype.toString;
  const MapC = Map;
  const ErrorC = Error;
  const TypeErrorC = TypeError;
  const RangeErrorC = RangeError;
  const StringC = String;

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
  const serverProxy = (server) => new ProxyC(Object.freeze(Object.create(null)), {
    get(_, tool) {
      if (notATool(tool)) return undefined;
      return (args) => callTool(server, tool, args);
    },
  });
  const servers = new ProxyC(Object.freeze(Object.create(null)), {
    get(_, server) { return notATool(server) ? undefined : serverProxy(server); },
  });

  // Timers: a callback runs as a microtask once its delay has passed; a pending timer keeps
  // the call running (as in Node), so timers count against the call's deadline.
  const PromiseC = Promise;
  const cancelled = new Set();
  let nextTimer = 0;
  function setTimeout(fn, ms, ...args) {
    if (typeof fn !== 'function') throw new TypeErrorC('setTimeout: the callback must be a function');
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
  const unprotectString = (s) => s.replace(SENTINEL_RE, (_, g) => (g === '\uFDD0' ? g : fromCharCode(parseIntC(g, 16))));
  function unprotect(v) {
    if (typeof v === 'string') return unprotectString(v);
    if (v === null || typeof v !== 'object') return v;
    if (isArray(v)) return v.map(unprotect);
    const out = {};
    for (const k of Object.keys(v)) {
      Object.defineProperty(out, unprotectString(k), { value: unprotect(v[k]), writable: true, enumerable: true, configurable: true });
    }
    return out;
  }

  const mcp = { state: {}, tools, resources };
  return {
    mcp, servers, console, ToolError, setTimeout, clearTimeout, queueMicrotask,
    serialize,
    describe,
    // `escaped` means the Rust side replaced lone-surrogate escapes, which Boa's JSON.parse
    // rejects, with SENTINEL + 4 hex digits (and doubled literal sentinels); undo that in every
    // key and string.
    setState(json, escaped) { mcp.state = escaped ? unprotect(parse(json)) : parse(json); },
    getState() { return mcp.state; },
  };
})
