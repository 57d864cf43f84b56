// Reads a trace.json with Chrome DevTools' trace engine (the parser behind
// the Performance panel, published as @paulirish/trace_engine) and prints, as
// JSON, what it made of it: each thread track with its slices, how many of
// them it placed in the track's tree and how deep that tree is, the trace's
// bounds and the engine's warnings.
//
// usage: node read_trace.mjs TRACE.json
//
// Debian 12's Node.js is 18; the engine uses two later built-ins, defined
// here with their standard meaning where they are missing.
if (typeof URL.parse !== 'function') {
  URL.parse = (url, base) => {
    try {
      return new URL(url, base);
    } catch {
      return null;
    }
  };
}
if (!Array.prototype.toSorted) {
  Object.defineProperty(Array.prototype, 'toSorted', {
    value(compare) {
      return [...this].sort(compare);
    },
    writable: true,
    configurable: true,
  });
}

const {analyzeTrace} = await import('@paulirish/trace_engine/analyze-trace.mjs');
const {parsedTrace} = await analyzeTrace(process.argv[2]);
const data = parsedTrace.data;

const threads = [];
for (const proc of data.Renderer.processes.values()) {
  for (const thread of proc.threads.values()) {
    const inTree = new Set();
    let depth = 0;
    const walk = (node, d) => {
      inTree.add(node.entry);
      depth = Math.max(depth, d);
      for (const child of node.children) walk(child, d + 1);
    };
    if (thread.tree) {
      for (const root of thread.tree.roots) walk(root, 1);
    }
    const left = thread.entries.filter((e) => !inTree.has(e));
    threads.push({
      name: thread.name,
      entries: thread.entries.length,
      in_tree: thread.entries.length - left.length,
      depth,
      left_out: left.slice(0, 5).map((e) => ({name: e.name, ts: e.ts, dur: e.dur, args: e.args})),
    });
  }
}
const warnings = {};
for (const [kind, list] of data.Warnings.perWarning.entries()) warnings[kind] = list.length;
const bounds = data.Meta.traceBounds;
console.log(JSON.stringify({threads, bounds: {min: bounds.min, max: bounds.max}, warnings}));
