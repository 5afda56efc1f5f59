/* safety-dash: a browser whose session has ended goes to the sign-in page.
 *
 * Served from /assets/, so only to signed-in users (the sign-in page needs no script). When Dash's layout or a
 * callback answers 401 (signed out in another tab, the session expired, the account was disabled or given a new
 * role or password), the page is replaced by /login?next=<this page>, so no stale data stays on the screen. A page
 * restored from the browser's back-forward cache is loaded again, so the server decides what it shows.
 */
(function () {
  "use strict";

  var WATCHED_PATHS = ["/_dash-update-component", "/_dash-layout"];
  var leaving = false;

  function isWatched(input) {
    var url = typeof input === "string" ? input : (input && input.url) || String(input);
    var path;
    try {
      path = new URL(url, window.location.href).pathname;
    } catch (error) {
      return false;
    }
    return WATCHED_PATHS.some(function (watched) {
      return path.slice(-watched.length) === watched;
    });
  }

  function goToSignIn() {
    if (leaving) {
      return;
    }
    leaving = true;
    var next = window.location.pathname + window.location.search;
    window.location.replace("/login?next=" + encodeURIComponent(next));
  }

  var originalFetch = window.fetch;
  if (typeof originalFetch === "function") {
    window.fetch = function (input) {
      var watched = isWatched(input);
      return originalFetch.apply(this, arguments).then(function (response) {
        if (watched && response.status === 401) {
          goToSignIn();
        }
        return response;
      });
    };
  }

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
})();
