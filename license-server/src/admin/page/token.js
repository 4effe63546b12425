// The bearer token of an admin page (the status page, and the headquarters page of
// `dongle-relay hq`, which serves this file too): it arrives in the address's fragment
// (#token=…, which browsers never send to a server) or through the page's token field, and is
// kept in sessionStorage (this tab only) under the page's own key.
'use strict';

window.pageToken = (key) => ({
  // Moves a #token=… of the address into the tab's storage and off the address bar.
  takeFromFragment() {
    const match = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
    if (match) {
      sessionStorage.setItem(key, decodeURIComponent(match[1]));
      history.replaceState(null, '', window.location.pathname + window.location.search);
    }
  },
  get: () => sessionStorage.getItem(key),
  set: (token) => sessionStorage.setItem(key, token),
  clear: () => sessionStorage.removeItem(key),
});
