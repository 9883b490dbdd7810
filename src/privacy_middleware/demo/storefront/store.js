/* The demo storefront: lists products, sends analytics events, shows the consent state. */
(function () {
  'use strict';
  var byId = function (id) { return document.getElementById(id); };
  function showConsent(detail) {
    var on = Object.keys(detail.purposes).filter(function (k) { return detail.purposes[k]; });
    byId('consent-state').textContent = on.join(', ') + ' | consent mode: ' + JSON.stringify(detail.consent_mode);
  }
  window.addEventListener('privacy:consent', function (e) { showConsent(e.detail); });
  byId('track').addEventListener('click', function () {
    fetch('/track', {method: 'POST', credentials: 'include', headers: {'content-type': 'application/json'},
      body: JSON.stringify({event: 'button_click', visitor_id: 'v-demo'})})
      .then(function (r) { byId('track-result').textContent = r.status === 202 ? 'accepted (202)' : 'dropped (' + r.status + ')'; });
  });
  byId('cookie-settings').addEventListener('click', function () {
    if (window.PrivacyConsent) window.PrivacyConsent.showPreferences();
  });
  fetch('/products').then(function (r) { return r.json(); }).then(function (data) {
    data.products.forEach(function (p) {
      var li = document.createElement('li');
      li.textContent = p.name + ' - ' + p.price.toFixed(2) + ' EUR';
      byId('products').appendChild(li);
    });
  });
})();
