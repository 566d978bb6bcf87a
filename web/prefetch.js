// Starts the widget's first data request while app.wasm downloads and
// compiles, instead of after: on a phone that saves a round trip before the
// first meter. The widget (app/client, FetchDoer) takes this response for
// its first attempt only if it asks for exactly this URL with exactly this
// Authorization header within 10 s; otherwise it is ignored and the widget
// fetches as usual, so a difference here costs time, never correctness.
// Keep in step with app/storage.go (keys, token in #token=) and
// app/client (the request).
(function () {
  "use strict";
  try {
    if (document.visibilityState === "hidden" || typeof fetch !== "function") {
      return; // the widget does not fetch while hidden either
    }
    var token = "";
    var frag = location.hash.replace(/^#/, "");
    var parts = frag ? frag.split("&") : [];
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].split("=");
      if (kv[0] === "token" && kv.length > 1) {
        try {
          // Percent-decoding only, as the widget does: a '+' in a
          // base64 token stays a '+'.
          token = decodeURIComponent(kv.slice(1).join("=")).trim();
        } catch (e) {
          token = kv.slice(1).join("=").trim();
        }
        if (token) break;
      }
    }
    var store = null;
    try {
      store = window.localStorage;
    } catch (e) {}
    if (!token && store) token = store.getItem("usage-widget.token") || "";
    var account = (store && store.getItem("usage-widget.account")) || "";
    var url = "/api/claude/console-usage" + (account ? "?account=" + encodeURIComponent(account) : "");
    var headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    var ac = new AbortController();
    window.__usagePrefetch = {
      url: url,
      auth: headers.Authorization || "",
      at: Date.now(),
      abort: function () { ac.abort(); },
      response: fetch(url, {
        method: "GET",
        headers: headers,
        cache: "no-store",
        credentials: "same-origin",
        signal: ac.signal,
      }),
    };
    // An unused failure must not show up as an unhandled rejection.
    window.__usagePrefetch.response.catch(function () {});
  } catch (e) {
    window.__usagePrefetch = undefined;
  }
})();
