// Compiles app.wasm off the page's main thread. Served by usage-server from
// its binary at /web/wasm-compile.js. app.js (go-app's loader as
// widgetmount rewrites it) starts this worker with the module's URL
// and instantiates the WebAssembly.Module it posts back. Compiled on the
// page, every chunk of the module is decoded on the main thread: hundreds
// of milliseconds of blocking time on a phone.
onmessage = async (e) => {
  try {
    const url = new URL(e.data, location.href).href;
    const module = await WebAssembly.compileStreaming(fetch(url));
    const entry = performance.getEntriesByName(url)[0];
    postMessage({ module, responseEnd: entry ? performance.timeOrigin + entry.responseEnd : 0 });
  } catch (err) {
    postMessage({ error: String(err) });
  }
};
