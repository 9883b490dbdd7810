/* privacy-middleware consent SDK: the banner (vanilla-cookieconsent) bound to the consent API.
 * window.PrivacyConsent: ready (Promise of the state), get(), allowed(purpose), consentMode(),
 * set({purpose: bool}), acceptAll(), rejectAll(), withdraw(), show(), showPreferences(),
 * on(listener) -> unsubscribe. Every change also fires window event "privacy:consent" and pushes
 * {event: "privacy_consent_update"} to window.dataLayer; Google Consent Mode v2 is updated. */
(function (w, d, CC, cfg) {
  'use strict';
  var state = null, listeners = [], syncing = false;
  w.dataLayer = w.dataLayer || [];
  var gtag = w.gtag || function () { w.dataLayer.push(arguments); };
  if (!w.gtag) w.gtag = gtag;
  gtag('consent', 'default', {ad_storage: 'denied', analytics_storage: 'denied', ad_user_data: 'denied',
    ad_personalization: 'denied', wait_for_update: 500});
  var gpc = w.navigator.globalPrivacyControl === true;

  function api(method, body) {
    var init = {method: method, credentials: 'include', headers: {accept: 'application/json'}};
    if (method !== 'GET') {
      init.headers['content-type'] = 'application/json';
      init.headers['x-privacy-consent'] = '1';
      if (body) init.body = JSON.stringify(body);
    }
    return fetch(cfg.api + '/consent', init).then(function (r) {
      if (!r.ok) throw new Error('consent API answered ' + r.status);
      return r.json();
    });
  }
  function locked(name) {
    var p = state && state.purposes[name];
    return !!(p && p.reason === 'gpc');
  }
  function publish(next, source) {
    state = next;
    gtag('consent', 'update', next.consent_mode);
    var detail = {purposes: {}, consent_mode: next.consent_mode, gpc: next.gpc, source: source};
    Object.keys(next.purposes).forEach(function (k) { detail.purposes[k] = next.purposes[k].allowed; });
    w.dataLayer.push({event: 'privacy_consent_update', privacy_consent: detail});
    listeners.slice().forEach(function (fn) { try { fn(detail); } catch (e) { /* a listener's error is its own */ } });
    w.dispatchEvent(new CustomEvent('privacy:consent', {detail: detail}));
    return next;
  }
  function choices() {
    var out = {};
    cfg.purposes.forEach(function (p) { if (!locked(p.name)) out[p.name] = CC.acceptedCategory(p.name); });
    return out;
  }
  function quiet(fn) { syncing = true; try { fn(); } finally { syncing = false; } }
  function save() {
    if (syncing) return;
    var purposes = choices();
    if (!Object.keys(purposes).length) return;
    api('PUT', {purposes: purposes, method: 'banner'}).then(function (s) { publish(s, 'banner'); })
      .catch(function (e) { if (w.console) w.console.warn('privacy consent not saved:', e.message); });
  }
  function granted(s) {
    return ['necessary'].concat(cfg.purposes.filter(function (p) {
      return s.purposes[p.name] && s.purposes[p.name].allowed && !locked(p.name);
    }).map(function (p) { return p.name; }));
  }
  function needsChoice(s) {
    if (s.reconsent_required) return true;
    return cfg.purposes.some(function (p) {
      var v = s.purposes[p.name];
      return v && v.choice === null && v.reason !== 'gpc';
    });
  }
  function run(s) {
    var categories = {necessary: {enabled: true, readOnly: true}};
    cfg.purposes.forEach(function (p) {
      // A purpose GPC refuses is no category: the banner cannot turn it on (readOnly means always on).
      if (!locked(p.name)) categories[p.name] = {enabled: !!(s.purposes[p.name] || {}).allowed};
    });
    var t = cfg.strings;
    var sections = [{title: t.prefs_intro_title, description: t.prefs_intro}];
    sections.push({title: t.necessary_title, description: cfg.necessary.join(' · '), linkedCategory: 'necessary'});
    cfg.purposes.forEach(function (p) {
      var extra = p.cookies.length ? ' ' + t.cookies + ': ' + p.cookies.join(', ') + '.' : '';
      var section = {title: p.title, description: p.description + extra};
      if (locked(p.name)) section.description += ' ' + t.gpc_locked;
      else section.linkedCategory = p.name;
      sections.push(section);
    });
    sections.push({title: t.more_title, description: '<a href="' + cfg.center + '">' + t.center_link + '</a>'});
    var translation = {
      consentModal: {title: t.title, description: t.description + (s.gpc ? ' ' + t.gpc_note : ''),
        acceptAllBtn: t.accept_all, acceptNecessaryBtn: t.reject_all, showPreferencesBtn: t.preferences,
        footer: '<a href="' + cfg.center + '/notice">' + t.notice_link + '</a>'},
      preferencesModal: {title: t.preferences_title, acceptAllBtn: t.accept_all, acceptNecessaryBtn: t.reject_all,
        savePreferencesBtn: t.save, closeIconLabel: t.close, sections: sections}
    };
    var translations = {};
    translations[cfg.lang] = translation;
    syncing = true;
    return CC.run({
      autoShow: false, mode: 'opt-in', hideFromBots: false, manageScriptTags: true,
      cookie: {name: 'pm_banner', useLocalStorage: true},
      guiOptions: {consentModal: {layout: 'box', position: 'bottom right', equalWeightButtons: true},
        preferencesModal: {layout: 'box', equalWeightButtons: true}},
      categories: categories,
      language: {default: cfg.lang, translations: translations},
      onFirstConsent: save, onChange: save
    }).then(function () {
      // The server is the source of truth: show its choices, ask only when a choice is missing.
      if (!needsChoice(s)) CC.acceptCategory(granted(s), []);
      syncing = false;
      if (needsChoice(s)) CC.show(true);
    });
  }
  function loadCss() {
    if (d.querySelector('link[data-privacy-consent]')) return;
    var link = d.createElement('link');
    link.rel = 'stylesheet'; link.href = cfg.css; link.setAttribute('data-privacy-consent', '');
    d.head.appendChild(link);
  }
  var ready = api('GET').then(function (s) {
    publish(s, 'load');
    loadCss();
    return run(s).then(function () { return state; });
  });
  w.PrivacyConsent = {
    ready: ready,
    gpc: gpc,
    get: function () { return state; },
    allowed: function (purpose) { return !!(state && state.purposes[purpose] && state.purposes[purpose].allowed); },
    consentMode: function () { return state ? state.consent_mode : null; },
    set: function (purposes) {
      return api('PUT', {purposes: purposes, method: 'banner'}).then(function (s) {
        quiet(function () { CC.acceptCategory(granted(s), []); });
        return publish(s, 'api');
      });
    },
    acceptAll: function () { CC.acceptCategory('all'); },
    rejectAll: function () { CC.acceptCategory([]); },
    withdraw: function () {
      return api('DELETE').then(function (s) {
        quiet(function () { CC.acceptCategory(['necessary'], []); });
        return publish(s, 'withdrawal');
      });
    },
    show: function () { CC.show(true); },
    showPreferences: function () { CC.showPreferences(); },
    on: function (fn) {
      listeners.push(fn);
      return function () { listeners = listeners.filter(function (x) { return x !== fn; }); };
    }
  };
})(window, document, window.CookieConsent, __PRIVACY_CONFIG__);
