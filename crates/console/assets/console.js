// Permanence telesecretary console: login, agent state, browser softphone
// (JsSIP over SIP/WebSocket), practice card, callbacks, dialler, today's figures.
//
// Plain JavaScript, no build step. Served under a CSP without inline script or
// style. Patient numbers are shown on screen and sent to the console API only:
// never logged to the browser console.
(function () {
  'use strict';

  // ---------------------------------------------------------------- strings

  const STRINGS = {
    fr: {
      page_title: 'Permanence — Console',
      skip_to_main: 'Aller au contenu',
      brand_sub: 'Console de télésecrétariat',
      sign_out: 'Se déconnecter',
      lang_toggle: 'English',
      login_title: "Connexion de l'agent",
      login_hint: 'Identifiant et mot de passe de votre poste SIP.',
      username: 'Identifiant',
      password: 'Mot de passe',
      login_button: 'Se connecter',
      login_busy: 'Connexion…',
      login_bad_credentials: 'Identifiant ou mot de passe incorrect.',
      login_throttled: 'Trop de tentatives. Réessayez dans {s} s.',
      login_missing: "Saisissez l'identifiant et le mot de passe.",
      session_expired: 'Session expirée : reconnectez-vous.',
      signed_out: 'Vous êtes déconnecté.',
      state_title: "État de l'agent",
      pause_reason: 'Motif de pause',
      reason_lunch: 'Pause déjeuner',
      reason_training: 'Formation',
      reason_meeting: 'Réunion',
      reason_admin: 'Administratif',
      reason_pause: 'Pause',
      reason_code: 'Pause (code {n})',
      btn_pause: 'Pause',
      btn_unpause: 'Reprendre',
      btn_queue_login: 'Entrer dans les files',
      btn_queue_logout: 'Sortir des files',
      state_available: 'Disponible',
      state_paused: 'En pause',
      state_wrap_up: 'Après-appel',
      state_ringing: 'Sonnerie',
      state_on_call: 'En communication',
      state_logged_out: 'Hors des files',
      state_unreachable: 'Injoignable',
      state_unknown: 'État inconnu',
      wrap_up_left: 'encore {t}',
      sip_stopped: 'Téléphone arrêté',
      sip_connecting: 'Téléphone : connexion…',
      sip_connected: 'Téléphone : connecté, enregistrement…',
      sip_registered: 'Téléphone prêt',
      sip_unregistered: 'Téléphone non enregistré',
      sip_failed: "Téléphone : échec de l'enregistrement",
      sip_disconnected: 'Téléphone déconnecté — reconnexion…',
      call_title: 'Appel',
      call_controls: "Commandes d'appel",
      dtmf_pad: 'Clavier de numérotation',
      no_call_hint: "En attente d'un appel. Raccourcis : Alt+A ou Entrée pour décrocher, Alt+H ou Échap pour raccrocher.",
      status_idle: 'Aucun appel',
      status_ringing_in: 'Appel entrant — {p}',
      status_ringing_out: 'Appel sortant en cours…',
      status_connected: 'En communication',
      status_held: 'Appel en attente',
      status_ended: 'Appel terminé',
      status_ended_cause: 'Appel terminé ({c})',
      caller: 'Appelant',
      triage: 'Choix du patient',
      waited: 'Attente',
      no_triage: 'aucun',
      anonymous: 'Numéro masqué',
      callback_offer: 'Rappel — essai {n}, demandé il y a {t}',
      outbound_offer: 'Appel sortant',
      btn_answer: 'Décrocher',
      btn_hangup: 'Raccrocher',
      btn_hold: 'Mettre en attente',
      btn_unhold: 'Reprendre l’appel',
      btn_mute: 'Couper le micro',
      btn_unmute: 'Rétablir le micro',
      transfer_target: 'Transférer vers',
      btn_blind_transfer: 'Transfert direct',
      btn_attended_transfer: 'Transfert accompagné',
      btn_attended_complete: 'Terminer le transfert',
      btn_consult_cancel: 'Annuler la consultation',
      transfer_no_target: 'Choisissez une cible de transfert.',
      transfer_sent: 'Transfert demandé vers {t}…',
      transfer_done: 'Transfert effectué.',
      transfer_failed: 'Transfert refusé ou échoué.',
      consult_calling: 'Consultation : appel de {t}…',
      consult_connected: 'Consultation : en ligne avec {t}. Terminez le transfert ou annulez.',
      consult_failed: 'Consultation : {t} ne répond pas.',
      consult_ended: 'Consultation terminée.',
      card_title: 'Consignes du cabinet',
      hours_today: "Horaires aujourd'hui :",
      transfer_targets: 'Transferts possibles',
      no_transfers: 'Aucun transfert prévu.',
      unknown_practice: 'Cabinet inconnu',
      callbacks_title: 'Rappels en attente',
      col_number: 'Numéro',
      col_deadline: 'Échéance',
      col_attempts: 'Essais',
      col_action: 'Action',
      callbacks_empty: 'Aucun rappel en attente.',
      call_back_now: 'Rappeler maintenant',
      cb_trying: 'en cours',
      deadline_in: 'dans {t}',
      deadline_late: 'dépassée de {t}',
      dialler_title: 'Appeler un patient',
      dial_practice: 'Au nom de',
      dial_number: 'Numéro',
      btn_dial: 'Appeler',
      dial_caller_id: 'Numéro présenté : {n}',
      dial_bad_number: 'Numéro invalide.',
      busy_on_call: 'Un appel est déjà en cours.',
      sip_not_ready: "Le téléphone n'est pas prêt.",
      today_title: "Aujourd'hui",
      today_calls: 'Appels pris',
      today_aht: 'Durée moyenne',
      today_callbacks: 'Rappels faits',
      today_outbound: 'Appels sortants',
      err_network: 'Serveur injoignable.',
      err_csrf: 'Jeton de sécurité refusé : rechargez la page.',
      err_forbidden: 'Accès refusé.',
      err_generic: 'Erreur du serveur ({code}).',
      err_media: "Micro inaccessible : vérifiez l'autorisation du navigateur.",
      err_jssip: 'Téléphone du navigateur non chargé : rechargez la page.',
      cause_busy: 'occupé',
      cause_rejected: 'refusé',
      cause_canceled: 'annulé',
      cause_no_answer: 'pas de réponse',
      cause_unavailable: 'indisponible',
      cause_not_found: 'introuvable',
      cause_other: 'échec',
      spec_generaliste: 'Médecine générale',
      spec_cardiologie: 'Cardiologie',
      spec_kine: 'Kinésithérapie',
      spec_pediatrie: 'Pédiatrie',
      spec_infirmier: 'Soins infirmiers',
      spec_dermatologie: 'Dermatologie',
      spec_gynecologie: 'Gynécologie',
      dur_s: '{s} s',
      dur_ms: '{m} min {s} s',
      dur_m: '{m} min',
      dur_hm: '{h} h {m} min',
    },
    en: {
      page_title: 'Permanence — Console',
      skip_to_main: 'Skip to content',
      brand_sub: 'Telesecretary console',
      sign_out: 'Sign out',
      lang_toggle: 'Français',
      login_title: 'Agent sign-in',
      login_hint: 'Username and password of your SIP phone.',
      username: 'Username',
      password: 'Password',
      login_button: 'Sign in',
      login_busy: 'Signing in…',
      login_bad_credentials: 'Wrong username or password.',
      login_throttled: 'Too many attempts. Try again in {s} s.',
      login_missing: 'Enter your username and password.',
      session_expired: 'Session expired: please sign in again.',
      signed_out: 'You are signed out.',
      state_title: 'Agent state',
      pause_reason: 'Pause reason',
      reason_lunch: 'Lunch break',
      reason_training: 'Training',
      reason_meeting: 'Meeting',
      reason_admin: 'Paperwork',
      reason_pause: 'Pause',
      reason_code: 'Pause (code {n})',
      btn_pause: 'Pause',
      btn_unpause: 'Resume',
      btn_queue_login: 'Join the queues',
      btn_queue_logout: 'Leave the queues',
      state_available: 'Available',
      state_paused: 'Paused',
      state_wrap_up: 'Wrap-up',
      state_ringing: 'Ringing',
      state_on_call: 'On a call',
      state_logged_out: 'Out of the queues',
      state_unreachable: 'Unreachable',
      state_unknown: 'Unknown state',
      wrap_up_left: '{t} left',
      sip_stopped: 'Phone stopped',
      sip_connecting: 'Phone: connecting…',
      sip_connected: 'Phone: connected, registering…',
      sip_registered: 'Phone ready',
      sip_unregistered: 'Phone not registered',
      sip_failed: 'Phone: registration failed',
      sip_disconnected: 'Phone disconnected — reconnecting…',
      call_title: 'Call',
      call_controls: 'Call controls',
      dtmf_pad: 'Dial pad',
      no_call_hint: 'Waiting for a call. Shortcuts: Alt+A or Enter to answer, Alt+H or Escape to hang up.',
      status_idle: 'No call',
      status_ringing_in: 'Incoming call — {p}',
      status_ringing_out: 'Calling…',
      status_connected: 'Connected',
      status_held: 'Call on hold',
      status_ended: 'Call ended',
      status_ended_cause: 'Call ended ({c})',
      caller: 'Caller',
      triage: "Caller's choice",
      waited: 'Waited',
      no_triage: 'none',
      anonymous: 'Withheld number',
      callback_offer: 'Callback — try {n}, requested {t} ago',
      outbound_offer: 'Outgoing call',
      btn_answer: 'Answer',
      btn_hangup: 'Hang up',
      btn_hold: 'Hold',
      btn_unhold: 'Resume call',
      btn_mute: 'Mute',
      btn_unmute: 'Unmute',
      transfer_target: 'Transfer to',
      btn_blind_transfer: 'Blind transfer',
      btn_attended_transfer: 'Attended transfer',
      btn_attended_complete: 'Complete transfer',
      btn_consult_cancel: 'Cancel consultation',
      transfer_no_target: 'Choose a transfer target.',
      transfer_sent: 'Transfer to {t} requested…',
      transfer_done: 'Transfer done.',
      transfer_failed: 'Transfer refused or failed.',
      consult_calling: 'Consultation: calling {t}…',
      consult_connected: 'Consultation: talking to {t}. Complete the transfer or cancel.',
      consult_failed: 'Consultation: {t} does not answer.',
      consult_ended: 'Consultation ended.',
      card_title: "Practice's instructions",
      hours_today: 'Opening hours today:',
      transfer_targets: 'Transfer targets',
      no_transfers: 'No transfer target.',
      unknown_practice: 'Unknown practice',
      callbacks_title: 'Pending callbacks',
      col_number: 'Number',
      col_deadline: 'Deadline',
      col_attempts: 'Tries',
      col_action: 'Action',
      callbacks_empty: 'No pending callback.',
      call_back_now: 'Call back now',
      cb_trying: 'in progress',
      deadline_in: 'in {t}',
      deadline_late: '{t} overdue',
      dialler_title: 'Call a patient',
      dial_practice: 'On behalf of',
      dial_number: 'Number',
      btn_dial: 'Call',
      dial_caller_id: 'Caller ID shown: {n}',
      dial_bad_number: 'Invalid number.',
      busy_on_call: 'A call is already in progress.',
      sip_not_ready: 'The phone is not ready.',
      today_title: 'Today',
      today_calls: 'Calls taken',
      today_aht: 'Average handle time',
      today_callbacks: 'Callbacks done',
      today_outbound: 'Outgoing calls',
      err_network: 'Server unreachable.',
      err_csrf: 'Security token refused: reload the page.',
      err_forbidden: 'Access denied.',
      err_generic: 'Server error ({code}).',
      err_media: 'Microphone unavailable: check the browser permission.',
      err_jssip: 'Browser phone not loaded: reload the page.',
      cause_busy: 'busy',
      cause_rejected: 'rejected',
      cause_canceled: 'cancelled',
      cause_no_answer: 'no answer',
      cause_unavailable: 'unavailable',
      cause_not_found: 'not found',
      cause_other: 'failed',
      spec_generaliste: 'General practice',
      spec_cardiologie: 'Cardiology',
      spec_kine: 'Physiotherapy',
      spec_pediatrie: 'Paediatrics',
      spec_infirmier: 'Nursing',
      spec_dermatologie: 'Dermatology',
      spec_gynecologie: 'Gynaecology',
      dur_s: '{s} s',
      dur_ms: '{m} min {s} s',
      dur_m: '{m} min',
      dur_hm: '{h} h {m} min',
    },
  };

  // Pause reasons sent to the API (values of #pause-reason) and their labels.
  const REASON_KEYS = {
    'pause déjeuner': 'reason_lunch',
    'formation': 'reason_training',
    'réunion': 'reason_meeting',
    'administratif': 'reason_admin',
    'pause': 'reason_pause',
  };

  // --------------------------------------------------------------- app state

  const app = {
    lang: 'fr',
    csrf: null,
    me: null,
    password: null,        // in memory only, for SIP digest auth
    ua: null,
    sipHost: null,
    events: null,          // EventSource
    eventsRetry: null,
    agentState: null,      // last GET/SSE state object
    wrapUpEnd: null,       // Date.now() ms when wrap-up ends
    call: null,            // current call context (see newCall)
    consult: null,         // attended-transfer consultation {session, target, established}
    focusPractice: null,   // practice id whose callbacks are shown
    callbacks: [],
    today: null,
    sipStatus: 'stopped',
    tick: null,
    audio: { ctx: null, analyser: null, source: null, stream: null, buf: null },
    errorTimer: null,
  };

  const $ = (id) => document.getElementById(id);

  function t(key, params) {
    const table = STRINGS[app.lang] || STRINGS.fr;
    let s = key in table ? table[key] : (key in STRINGS.fr ? STRINGS.fr[key] : key);
    if (params) {
      for (const k of Object.keys(params)) s = s.split('{' + k + '}').join(String(params[k]));
    }
    return s;
  }

  function setText(el, text) {
    if (typeof el === 'string') el = $(el);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function show(el, visible) {
    if (typeof el === 'string') el = $(el);
    if (el) el.hidden = !visible;
  }

  // Durations for people: "45 s", "3 min 05 s", "1 h 10 min".
  function fmtDuration(totalSeconds) {
    let s = Math.max(0, Math.round(totalSeconds));
    if (s < 60) return t('dur_s', { s });
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    s = s % 60;
    if (h > 0) return t('dur_hm', { h, m });
    if (m >= 10) return t('dur_m', { m });
    return t('dur_ms', { m, s: String(s).padStart(2, '0') });
  }

  // Deadlines: seconds only in the last minute ("42 s", "4 min", "1 h 10 min").
  function fmtDeadline(totalSeconds) {
    const s = Math.max(0, Math.round(totalSeconds));
    if (s < 60) return t('dur_s', { s });
    if (s < 3600) return t('dur_m', { m: Math.floor(s / 60) });
    return t('dur_hm', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
  }

  function fmtClock(totalSeconds) {
    const s = Math.max(0, Math.round(totalSeconds));
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  // French-style grouping of a national number, for reading aloud.
  function fmtNumber(n) {
    if (!n) return '';
    const m = /^\+33(\d)(\d{8})$/.exec(n);
    if (m) return '0' + m[1] + ' ' + m[2].replace(/(\d\d)(?=\d)/g, '$1 ');
    if (/^0\d{9}$/.test(n)) return n.replace(/(\d\d)(?=\d)/g, '$1 ');
    return n;
  }

  // ------------------------------------------------------------------ i18n

  function applyLanguage() {
    document.documentElement.lang = app.lang;
    document.title = t('page_title');
    for (const el of document.querySelectorAll('[data-i18n]')) {
      el.textContent = t(el.getAttribute('data-i18n'));
    }
    for (const el of document.querySelectorAll('[data-i18n-aria]')) {
      el.setAttribute('aria-label', t(el.getAttribute('data-i18n-aria')));
    }
    const toggle = $('lang-toggle');
    toggle.textContent = t('lang_toggle');
    toggle.setAttribute('lang', app.lang === 'fr' ? 'en' : 'fr');
    renderAll();
  }

  function renderAll() {
    renderState();
    renderSipStatus();
    renderCall();
    renderCallbacks();
    renderToday();
    renderDialler();
  }

  // ------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, body) {
      super('api ' + status);
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') {
      if (app.csrf) headers['X-CSRF-Token'] = app.csrf;
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { error: 'network' });
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!res.ok) {
      const err = new ApiError(res.status, data);
      err.retryAfter = Number(res.headers.get('Retry-After')) || (data && data.retry_after) || null;
      throw err;
    }
    return data;
  }

  // Shows an API failure; a lost session goes back to the login form.
  function handleApiError(err) {
    if (!(err instanceof ApiError)) {
      showError(t('err_generic', { code: '?' }));
      return;
    }
    if (err.status === 401 && app.me) {
      resetToLogin(t('session_expired'));
      return;
    }
    if (err.status === 0) showError(t('err_network'));
    else if (err.status === 403 && err.body.error === 'csrf') showError(t('err_csrf'));
    else if (err.status === 403) showError(t('err_forbidden'));
    else showError(t('err_generic', { code: err.status + (err.body.error ? ' ' + err.body.error : '') }));
  }

  function showError(message) {
    const box = $('app-error');
    box.textContent = message;
    box.hidden = false;
    clearTimeout(app.errorTimer);
    app.errorTimer = setTimeout(() => { box.hidden = true; }, 10000);
  }

  function clearError() {
    clearTimeout(app.errorTimer);
    $('app-error').hidden = true;
  }

  // ----------------------------------------------------------------- login

  async function onLoginSubmit(ev) {
    ev.preventDefault();
    ensureAudioContext(); // a user gesture: allowed to create the AudioContext
    const username = $('username').value.trim();
    const password = $('password').value;
    const errBox = $('login-error');
    errBox.hidden = true;
    if (!username || !password) {
      errBox.textContent = t('login_missing');
      errBox.hidden = false;
      return;
    }
    const button = $('login-button');
    button.disabled = true;
    button.textContent = t('login_busy');
    try {
      const res = await api('POST', '/console/api/login', { username, password });
      app.csrf = res && res.csrf;
      const me = await api('GET', '/console/api/me');
      $('password').value = '';
      startConsole(me, password);
    } catch (err) {
      let msg;
      if (err instanceof ApiError && err.status === 401) msg = t('login_bad_credentials');
      else if (err instanceof ApiError && err.status === 429) msg = t('login_throttled', { s: err.retryAfter || 60 });
      else if (err instanceof ApiError && err.status === 0) msg = t('err_network');
      else msg = t('err_generic', { code: err.status || '?' });
      errBox.textContent = msg;
      errBox.hidden = false;
      $('password').focus();
    } finally {
      button.disabled = false;
      button.textContent = t('login_button');
    }
  }

  function startConsole(me, password) {
    app.me = me;
    app.csrf = me.csrf || app.csrf;
    app.password = password;
    app.sipHost = hostOfUri(me.sip && me.sip.uri);
    const practices = me.practices || [];
    app.focusPractice = practices.length ? practices[0].id : null;

    setText('agent-name', (me.agent && (me.agent.display_name || me.agent.username)) || '');
    fillDialPractices();
    fillTransferOptions(null);
    show('login-view', false);
    show('console-view', true);
    show('agent-info', true);
    show('btn-signout', true);
    clearError();
    renderAll();

    startTick();
    openEvents();
    refreshState();
    refreshToday();
    refreshCallbacks();
    startUa();
    $('main').focus();
  }

  async function signOut() {
    const hadSession = !!app.me;
    try {
      if (hadSession) await api('POST', '/console/api/logout');
    } catch (err) {
      // The session may already be gone: sign out locally anyway.
    }
    resetToLogin(t('signed_out'));
  }

  // Drops everything held for the session: password, CSRF token, SIP, events.
  function resetToLogin(message) {
    const call = app.call;
    if (call && call.session && !call.session.isEnded()) {
      try { call.session.terminate(); } catch (e) { /* already gone */ }
    }
    if (app.consult && !app.consult.session.isEnded()) {
      try { app.consult.session.terminate(); } catch (e) { /* already gone */ }
    }
    if (app.ua) {
      try { app.ua.stop(); } catch (e) { /* ignore */ }
    }
    if (app.events) app.events.close();
    clearTimeout(app.eventsRetry);
    clearInterval(app.tick);
    app.ua = null;
    app.events = null;
    app.tick = null;
    app.password = null;
    app.csrf = null;
    app.me = null;
    app.call = null;
    app.consult = null;
    app.agentState = null;
    app.wrapUpEnd = null;
    app.callbacks = [];
    app.today = null;
    app.sipStatus = 'stopped';
    stopRemoteAnalysis();
    $('remote-audio').srcObject = null;
    $('consult-audio').srcObject = null;
    $('password').value = '';
    $('dial-number').value = '';
    $('transfer-target').value = '';
    exposeForTests();
    show('console-view', false);
    show('agent-info', false);
    show('btn-signout', false);
    show('login-view', true);
    const errBox = $('login-error');
    errBox.textContent = message || '';
    errBox.hidden = !message;
    renderAll();
    $('username').focus();
  }

  function hostOfUri(uri) {
    const m = /^sips?:(?:[^@]*@)?([^;?>]+)/i.exec(uri || '');
    return m ? m[1] : location.hostname;
  }

  // ------------------------------------------------------------ agent state

  async function refreshState() {
    try {
      onState(await api('GET', '/console/api/state'));
    } catch (err) {
      handleApiError(err);
    }
  }

  async function postState(body) {
    try {
      onState(await api('POST', '/console/api/state', body));
      clearError();
    } catch (err) {
      handleApiError(err);
    }
  }

  function onState(st) {
    if (!st || typeof st !== 'object') return;
    app.agentState = st;
    app.wrapUpEnd = st.state === 'wrap_up' && typeof st.wrap_up_remaining_s === 'number'
      ? Date.now() + st.wrap_up_remaining_s * 1000
      : null;
    // The call is over and the agent moved on: clear the call panel.
    if (app.call && app.call.status === 'ended' &&
        ['available', 'paused', 'logged_out', 'unreachable'].includes(st.state)) {
      app.call = null;
      exposeForTests();
      renderCall();
    }
    renderState();
  }

  function reasonLabel(reason) {
    if (!reason) return '';
    if (REASON_KEYS[reason]) return t(REASON_KEYS[reason]);
    const m = /^pause-(\d+)$/.exec(reason);
    if (m) return t('reason_code', { n: m[1] });
    return reason;
  }

  function renderState() {
    const st = app.agentState;
    const code = st ? st.state : 'unknown';
    const el = $('agent-state');
    el.setAttribute('data-state', code);
    setText(el, code);
    $('agent-state-badge').setAttribute('data-state', code);
    setText('agent-state-label', t('state_' + code) === 'state_' + code ? code : t('state_' + code));
    const reason = st && st.state === 'paused' ? reasonLabel(st.reason) : '';
    setText('agent-state-reason', reason ? '— ' + reason : '');
    renderWrapUp();

    const known = !!st;
    $('btn-pause').disabled = known && (code === 'paused' || code === 'logged_out');
    $('btn-unpause').disabled = known && code !== 'paused';
    $('btn-login').disabled = known && code !== 'logged_out';
    $('btn-logout').disabled = known && code === 'logged_out';
  }

  function renderWrapUp() {
    const el = $('wrap-up-remaining');
    if (app.wrapUpEnd && app.agentState && app.agentState.state === 'wrap_up') {
      const left = Math.max(0, (app.wrapUpEnd - Date.now()) / 1000);
      setText(el, t('wrap_up_left', { t: fmtClock(Math.ceil(left)) }));
      el.hidden = false;
    } else {
      el.hidden = true;
    }
  }

  // ------------------------------------------------------------ live events

  function openEvents() {
    if (app.events) app.events.close();
    const es = new EventSource('/console/api/events');
    app.events = es;
    es.addEventListener('open', () => {
      // Catch up with what happened while disconnected.
      refreshState();
      refreshToday();
      refreshCallbacks();
    });
    es.addEventListener('state', (ev) => {
      const data = parseJson(ev.data);
      if (data) onState(data);
    });
    es.addEventListener('callbacks', (ev) => {
      const data = parseJson(ev.data);
      if (!data || !data.practice || data.practice === app.focusPractice) refreshCallbacks();
    });
    es.addEventListener('today', (ev) => {
      const data = parseJson(ev.data);
      if (data) { app.today = data; renderToday(); }
    });
    es.addEventListener('error', () => {
      if (es.readyState !== EventSource.CLOSED || app.events !== es) return;
      // The server refused the stream (session gone?) or went away: check
      // the session once, then reopen later.
      app.events = null;
      api('GET', '/console/api/me').then(
        () => { app.eventsRetry = setTimeout(() => { if (app.me) openEvents(); }, 5000); },
        (err) => {
          if (err instanceof ApiError && err.status === 401) handleApiError(err);
          else app.eventsRetry = setTimeout(() => { if (app.me) openEvents(); }, 5000);
        });
    });
  }

  function parseJson(s) {
    try { return JSON.parse(s); } catch (e) { return null; }
  }

  // ------------------------------------------------------------------ today

  async function refreshToday() {
    try {
      app.today = await api('GET', '/console/api/today');
      renderToday();
    } catch (err) {
      handleApiError(err);
    }
  }

  function renderToday() {
    const d = app.today;
    setText('today-calls', d ? String(d.calls ?? 0) : '—');
    setText('today-aht', d && typeof d.handle_seconds_avg === 'number' ? fmtClock(d.handle_seconds_avg) : '—');
    setText('today-callbacks', d ? String(d.callbacks_done ?? 0) : '—');
    setText('today-outbound', d ? String(d.outbound_calls ?? 0) : '—');
  }

  // -------------------------------------------------------------- callbacks

  function practiceById(id) {
    return ((app.me && app.me.practices) || []).find((p) => p.id === id) || null;
  }

  function setFocusPractice(id) {
    if (!id || id === app.focusPractice) return;
    app.focusPractice = id;
    app.callbacks = [];
    renderCallbacks();
    renderCall();
    refreshCallbacks();
  }

  async function refreshCallbacks() {
    const practice = app.focusPractice;
    if (!practice) { app.callbacks = []; renderCallbacks(); return; }
    try {
      const res = await api('GET', '/console/api/callbacks?practice=' + encodeURIComponent(practice));
      if (practice !== app.focusPractice) return;
      app.callbacks = (res && res.callbacks) || [];
      renderCallbacks();
    } catch (err) {
      handleApiError(err);
    }
  }

  function renderCallbacks() {
    const p = practiceById(app.focusPractice);
    setText('callbacks-practice', p ? '— ' + p.name : '');
    const body = $('callbacks-body');
    const keys = app.callbacks.map((c) => c.key);
    const rows = Array.from(body.querySelectorAll('tr.callback'));
    const same = rows.length === keys.length && rows.every((r, i) => r.getAttribute('data-key') === keys[i]);
    if (!same) {
      body.textContent = '';
      for (const cb of app.callbacks) body.appendChild(callbackRow(cb));
    }
    // Refresh the cells that change (countdown, state, language).
    app.callbacks.forEach((cb, i) => updateCallbackRow(body.rows[i], cb));
    show('callbacks-table', app.callbacks.length > 0);
    show('callbacks-empty', app.callbacks.length === 0);
  }

  function callbackRow(cb) {
    const tr = document.createElement('tr');
    tr.className = 'callback';
    tr.setAttribute('data-key', cb.key);
    const first = document.createElement('td');
    const num = document.createElement('span');
    num.className = 'cb-number';
    const why = document.createElement('span');
    why.className = 'cb-triage';
    first.appendChild(num);
    first.appendChild(why);
    tr.appendChild(first);
    tr.appendChild(document.createElement('td'));
    const tries = document.createElement('td');
    tries.className = 'num';
    tr.appendChild(tries);
    const td = document.createElement('td');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'call-back-now';
    button.addEventListener('click', () => callBackNow(cb.key));
    td.appendChild(button);
    tr.appendChild(td);
    return tr;
  }

  function updateCallbackRow(tr, cb) {
    if (!tr) return;
    const cells = tr.cells;
    setText(cells[0].firstChild, fmtNumber(cb.number));
    setText(cells[0].lastChild, cb.triage || '');
    const deadline = Date.parse(cb.deadline);
    if (Number.isFinite(deadline)) {
      const left = (deadline - Date.now()) / 1000;
      setText(cells[1], left >= 0 ? t('deadline_in', { t: fmtDeadline(left) }) : t('deadline_late', { t: fmtDeadline(-left) }));
      tr.classList.toggle('late', left < 0);
      tr.classList.toggle('soon', left >= 0 && left < 600);
    } else {
      setText(cells[1], '—');
    }
    setText(cells[2], String(cb.attempts ?? 0) + (cb.state === 'trying' ? ' (' + t('cb_trying') + ')' : ''));
    const button = cells[3].firstChild;
    setText(button, t('call_back_now'));
    button.setAttribute('aria-label', t('call_back_now') + ' ' + fmtNumber(cb.number));
    button.disabled = cb.state === 'trying' || !!app.call && app.call.status !== 'ended';
  }

  function callBackNow(key) {
    const cb = app.callbacks.find((c) => c.key === key);
    if (!cb) return;
    const practice = practiceById(cb.practice) || practiceById(app.focusPractice);
    if (!practice) return;
    dialOut(practice, cb.number, { callbackKey: key });
  }

  async function markHandled(key) {
    try {
      await api('POST', '/console/api/callbacks/' + encodeURIComponent(key) + '/handled');
      refreshCallbacks();
    } catch (err) {
      handleApiError(err);
    }
  }

  // ---------------------------------------------------------------- dialler

  function fillDialPractices() {
    const sel = $('dial-practice');
    sel.textContent = '';
    for (const p of (app.me && app.me.practices) || []) {
      const opt = document.createElement('option');
      opt.value = p.id;
      opt.textContent = p.name;
      sel.appendChild(opt);
    }
    if (app.focusPractice) sel.value = app.focusPractice;
  }

  function renderDialler() {
    const p = practiceById($('dial-practice').value);
    setText('dial-caller-id', p && p.caller_id ? t('dial_caller_id', { n: fmtNumber(p.caller_id) }) : '');
    $('btn-dial').disabled = !!app.call && app.call.status !== 'ended';
  }

  // Keeps digits and a leading '+': "06 12-34.56 78" -> "0612345678".
  function cleanNumber(raw) {
    const s = String(raw || '').trim().replace(/[\s.\-()\/]/g, '');
    return /^\+?\d{2,20}$/.test(s) ? s : null;
  }

  function onDialSubmit(ev) {
    ev.preventDefault();
    const practice = practiceById($('dial-practice').value);
    const number = cleanNumber($('dial-number').value);
    if (!practice) return;
    if (!number) { showError(t('dial_bad_number')); $('dial-number').focus(); return; }
    dialOut(practice, number, {});
  }

  // Calls a patient as the practice: INVITE sip:*8<code>*<number>@host.
  function dialOut(practice, number, opts) {
    if (app.call && app.call.status !== 'ended') { showError(t('busy_on_call')); return; }
    if (!app.ua || !app.ua.isRegistered()) { showError(t('sip_not_ready')); return; }
    ensureAudioContext();
    const target = 'sip:*8' + practice.outbound_code + '*' + number + '@' + app.sipHost;
    const call = newCall({
      direction: 'outgoing',
      practiceId: practice.id,
      practiceName: practice.name,
      caller: number,
      callbackKey: opts.callbackKey || null,
    });
    let session;
    try {
      session = app.ua.call(target, callOptions());
    } catch (err) {
      app.call = null;
      showError(t('err_generic', { code: 'SIP' }));
      renderCall();
      return;
    }
    attachSession(call, session);
    setFocusPractice(practice.id);
    renderCall();
  }

  function callOptions(extra) {
    return Object.assign({
      mediaConstraints: { audio: true, video: false },
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
      pcConfig: { iceServers: [] },
    }, extra || {});
  }

  // ---------------------------------------------------------------- softphone

  function startUa() {
    if (typeof JsSIP === 'undefined') { showError(t('err_jssip')); return; }
    JsSIP.debug.disable(); // SIP traces carry patients' numbers: never log them
    const me = app.me;
    const socket = new JsSIP.WebSocketInterface(me.sip.ws_url);
    const ua = new JsSIP.UA({
      sockets: [socket],
      uri: me.sip.uri,
      password: app.password,
      realm: me.sip.realm || undefined,
      display_name: (me.agent && me.agent.display_name) || undefined,
      register: true,
      register_expires: 300,
      session_timers: false,
      user_agent: 'Permanence console (JsSIP ' + JsSIP.version + ')',
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    });
    app.ua = ua;
    setSipStatus('connecting');
    ua.on('connecting', () => setSipStatus('connecting'));
    ua.on('connected', () => setSipStatus(ua.isRegistered() ? 'registered' : 'connected'));
    ua.on('disconnected', () => setSipStatus('disconnected'));
    // The registration makes the agent reachable for the dispatcher: read
    // the state again (its event may have been pushed before this page's
    // event stream was open).
    ua.on('registered', () => { setSipStatus('registered'); refreshState(); });
    ua.on('unregistered', () => { if (app.sipStatus !== 'disconnected') setSipStatus('unregistered'); });
    ua.on('registrationFailed', (e) => {
      // Transport errors: JsSIP reconnects and registers again by itself.
      setSipStatus(e && e.cause === JsSIP.C.causes.CONNECTION_ERROR ? 'disconnected' : 'failed');
    });
    ua.on('newRTCSession', onNewRtcSession);
    ua.start();
    exposeForTests();
  }

  function setSipStatus(status) {
    app.sipStatus = status;
    renderSipStatus();
  }

  function renderSipStatus() {
    const el = $('sip-status');
    el.setAttribute('data-status', app.sipStatus);
    setText(el, t('sip_' + app.sipStatus));
  }

  function newCall(fields) {
    const call = Object.assign({
      direction: 'incoming',
      session: null,
      status: 'ringing',
      practiceId: null,
      practiceName: '',
      caller: '',
      triage: null,
      waitAtOffer: null,
      offeredAt: Date.now(),
      answeredAt: null,
      callback: null,
      callbackKey: null,
      handledPosted: false,
      held: false,
      holdBusy: false,
      holdQueued: false,
      muted: false,
      endCause: null,
      transfer: null,
    }, fields);
    app.call = call;
    $('transfer-target').value = '';
    setText('consult-status', '');
    fillTransferOptions(practiceById(call.practiceId));
    exposeForTests();
    return call;
  }

  function onNewRtcSession(e) {
    if (e.originator !== 'remote') return; // our own calls are set up where dialled
    const session = e.session;
    const request = e.request;
    if ((app.call && app.call.status !== 'ended') || app.consult) {
      session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    const practiceId = header(request, 'X-Permanence-Practice');
    const practice = practiceById(practiceId);
    const from = request.from || session.remote_identity;
    const user = from && from.uri ? from.uri.user : '';
    const call = newCall({
      direction: 'incoming',
      practiceId,
      practiceName: offerTitle(from && from.display_name, practice),
      caller: user && user !== 'anonymous' ? user : null,
      triage: parseTriage(header(request, 'X-Permanence-Triage')),
      waitAtOffer: parseInt(header(request, 'X-Permanence-Wait'), 10),
      callback: parseCallbackHeader(header(request, 'X-Permanence-Callback')),
    });
    attachSession(call, session);
    if (practiceId) setFocusPractice(practiceId);
    renderCall();
    $('btn-answer').focus();
  }

  // The From display name is "<practice> - <specialty>" (or "Rappel -
  // <practice>" for a callback): the specialty is shown on its own line.
  function offerTitle(display, practice) {
    display = (display || '').trim();
    if (!practice) return display;
    if (!display || display.startsWith(practice.name + ' - ')) return practice.name;
    return display;
  }

  function header(request, name) {
    try {
      return request && request.hasHeader(name) ? request.getHeader(name) : null;
    } catch (e) {
      return null;
    }
  }

  // `2;label="rendez-vous"` -> {digit: "2", label: "rendez-vous"}.
  function parseTriage(value) {
    if (!value) return null;
    const m = /^\s*([^;\s]*)\s*(?:;\s*label\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*)))?/i.exec(value);
    if (!m) return null;
    const label = (m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] || '')).trim();
    return { digit: m[1] || '', label };
  }

  // `attempt=2;requested-ago=600` -> {attempt: 2, requestedAgo: 600}.
  function parseCallbackHeader(value) {
    if (!value) return null;
    const out = {};
    for (const part of value.split(';')) {
      const [k, v] = part.split('=').map((x) => (x || '').trim());
      if (k === 'attempt') out.attempt = parseInt(v, 10);
      if (k === 'requested-ago') out.requestedAgo = parseInt(v, 10);
    }
    return out;
  }

  function attachSession(call, session) {
    call.session = session;
    exposeForTests();
    session.on('peerconnection', (e) => watchRemoteTracks(call, e.peerconnection, 'remote-audio'));
    if (session.connection) watchRemoteTracks(call, session.connection, 'remote-audio');
    session.on('progress', () => { if (app.call === call) renderCall(); });
    session.on('accepted', () => onCallUp(call));
    session.on('confirmed', () => onCallUp(call));
    session.on('hold', (e) => { if (e.originator === 'local') { call.held = true; call.status = 'held'; renderCall(); } });
    session.on('unhold', (e) => { if (e.originator === 'local') { call.held = false; call.status = 'connected'; renderCall(); } });
    session.on('muted', () => { call.muted = true; renderCall(); });
    session.on('unmuted', () => { call.muted = false; renderCall(); });
    session.on('getusermediafailed', () => showError(t('err_media')));
    session.on('ended', (e) => onCallEnd(call, e));
    session.on('failed', (e) => onCallEnd(call, e));
  }

  function onCallUp(call) {
    if (call.status === 'ended') return;
    if (!call.answeredAt) call.answeredAt = Date.now();
    if (call.status === 'ringing') call.status = call.held ? 'held' : 'connected';
    attachRemoteFromReceivers(call.session, 'remote-audio');
    // A callback dialled from the list is handled once the patient is reached.
    if (call.callbackKey && !call.handledPosted) {
      call.handledPosted = true;
      markHandled(call.callbackKey);
    }
    renderCall();
  }

  function onCallEnd(call, e) {
    if (call.status === 'ended') return;
    call.status = 'ended';
    call.endCause = e && e.originator !== 'local' ? e.cause : null;
    call.held = false;
    if (app.consult) cancelConsult();
    if (app.call === call) {
      stopRemoteAnalysis();
      $('remote-audio').srcObject = null;
    }
    renderCall();
    renderCallbacks();
  }

  // ----------------------------------------------------------- remote audio

  function watchRemoteTracks(call, pc, audioId) {
    if (!pc || pc.__permanenceWatched) return;
    pc.__permanenceWatched = true;
    pc.addEventListener('track', (ev) => {
      const stream = (ev.streams && ev.streams[0]) || new MediaStream([ev.track]);
      playRemote(stream, audioId);
    });
  }

  function attachRemoteFromReceivers(session, audioId) {
    const pc = session && session.connection;
    if (!pc || typeof pc.getReceivers !== 'function') return;
    const el = $(audioId);
    if (el.srcObject) return;
    const tracks = pc.getReceivers().map((r) => r.track).filter((tr) => tr && tr.kind === 'audio');
    if (tracks.length) playRemote(new MediaStream(tracks), audioId);
  }

  function playRemote(stream, audioId) {
    const el = $(audioId);
    if (el.srcObject !== stream) el.srcObject = stream;
    const p = el.play();
    if (p && typeof p.catch === 'function') p.catch(() => { /* autoplay: resumed on next gesture */ });
    if (audioId === 'remote-audio') analyseRemote(stream);
  }

  function ensureAudioContext() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!app.audio.ctx) {
      try { app.audio.ctx = new Ctx(); } catch (e) { return null; }
    }
    if (app.audio.ctx.state === 'suspended') app.audio.ctx.resume().catch(() => {});
    if (app.audio.stream && !app.audio.analyser) analyseRemote(app.audio.stream);
    return app.audio.ctx;
  }

  function analyseRemote(stream) {
    const a = app.audio;
    a.stream = stream;
    if (!a.ctx) return; // created on the next user gesture (Answer click)
    if (a.source) { try { a.source.disconnect(); } catch (e) { /* ignore */ } }
    try {
      a.source = a.ctx.createMediaStreamSource(stream);
      a.analyser = a.ctx.createAnalyser();
      a.analyser.fftSize = 2048;
      a.buf = new Float32Array(a.analyser.fftSize);
      a.source.connect(a.analyser); // not to the destination: <audio> plays it
    } catch (e) {
      a.source = null;
      a.analyser = null;
    }
  }

  function stopRemoteAnalysis() {
    const a = app.audio;
    if (a.source) { try { a.source.disconnect(); } catch (e) { /* ignore */ } }
    a.source = null;
    a.analyser = null;
    a.stream = null;
  }

  // RMS (0..1) of the received audio right now.
  function remoteAudioLevel() {
    const a = app.audio;
    if (!a.analyser) return 0;
    a.analyser.getFloatTimeDomainData(a.buf);
    let sum = 0;
    for (let i = 0; i < a.buf.length; i++) sum += a.buf[i] * a.buf[i];
    return Math.min(1, Math.sqrt(sum / a.buf.length));
  }

  function exposeForTests() {
    window.permanenceConsole = {
      ua: app.ua,
      session: app.call ? app.call.session : null,
      consultSession: app.consult ? app.consult.session : null,
      remoteAudioLevel,
    };
  }

  // ---------------------------------------------------------- call controls

  function activeSession() {
    const c = app.call;
    return c && c.session && c.status !== 'ended' ? c.session : null;
  }

  function answer() {
    const c = app.call;
    if (!c || c.direction !== 'incoming' || c.status !== 'ringing' || c.answering) return;
    c.answering = true;
    ensureAudioContext(); // user gesture: create or resume the AudioContext
    try {
      c.session.answer(callOptions());
    } catch (err) {
      showError(t('err_generic', { code: 'SIP' }));
    }
    // The stream may already be there (track events fire during answer()).
    const el = $('remote-audio');
    if (el.srcObject) el.play().catch(() => {});
  }

  function hangup() {
    const s = activeSession();
    if (!s) return;
    if (app.consult) cancelConsult();
    try { s.terminate(); } catch (e) { /* already ending */ }
  }

  function toggleHold() {
    const c = app.call;
    const s = activeSession();
    if (!s || !s.isEstablished()) return;
    // JsSIP refuses a re-INVITE while one is in progress: a click meanwhile
    // is applied once the current one completes.
    if (c.holdBusy) { c.holdQueued = !c.holdQueued; return; }
    const done = () => {
      c.holdBusy = false;
      renderCall();
      if (c.holdQueued) { c.holdQueued = false; toggleHold(); }
    };
    c.holdBusy = c.held ? s.unhold({}, done) : s.hold({}, done);
    renderCall();
  }

  function toggleMute() {
    const c = app.call;
    const s = activeSession();
    if (!s) return;
    if (c.muted) s.unmute({ audio: true }); else s.mute({ audio: true });
  }

  function sendDigit(digit) {
    const s = activeSession();
    if (!s || !s.isEstablished()) return;
    try { s.sendDTMF(digit, { transportType: 'RFC2833' }); } catch (e) { showError(t('err_generic', { code: 'DTMF' })); }
  }

  function transferTarget() {
    const raw = $('transfer-target').value.trim();
    if (!raw) { showError(t('transfer_no_target')); $('transfer-target').focus(); return null; }
    return raw;
  }

  function targetUri(target) {
    return /^sips?:/i.test(target) ? target : 'sip:' + target + '@' + app.sipHost;
  }

  function blindTransfer() {
    const c = app.call;
    const s = activeSession();
    if (!s || !s.isEstablished()) return;
    const target = transferTarget();
    if (!target) return;
    setText('consult-status', t('transfer_sent', { t: target }));
    referTo(c, s, targetUri(target), null);
  }

  function referTo(call, session, uri, replaces) {
    const opts = {
      eventHandlers: {
        accepted: () => {
          setText('consult-status', t('transfer_done'));
          // RFC 5589: the transferor ends its call once the transfer succeeded.
          if (!session.isEnded()) { try { session.terminate(); } catch (e) { /* gone */ } }
          if (replaces && !replaces.isEnded()) { try { replaces.terminate(); } catch (e) { /* gone */ } }
        },
        requestFailed: () => setText('consult-status', t('transfer_failed')),
        failed: () => setText('consult-status', t('transfer_failed')),
      },
    };
    if (replaces) opts.replaces = replaces;
    try {
      session.refer(uri, opts);
    } catch (e) {
      setText('consult-status', t('transfer_failed'));
    }
  }

  // First click: hold the caller and call the target. Second click (target
  // answered): REFER the caller to the target, replacing our consultation.
  function attendedTransfer() {
    const c = app.call;
    const s = activeSession();
    if (!s || !s.isEstablished()) return;
    if (app.consult) {
      if (!app.consult.established) return;
      referTo(c, s, app.consult.uri, app.consult.session);
      return;
    }
    const target = transferTarget();
    if (!target) return;
    if (!c.held && !c.holdBusy) {
      c.holdBusy = s.hold({}, () => { c.holdBusy = false; renderCall(); });
    }
    const uri = targetUri(target);
    let consult;
    try {
      consult = app.ua.call(uri, callOptions());
    } catch (e) {
      setText('consult-status', t('consult_failed', { t: target }));
      return;
    }
    app.consult = { session: consult, target, uri, established: false };
    exposeForTests();
    consult.on('peerconnection', (e) => watchRemoteTracks(null, e.peerconnection, 'consult-audio'));
    if (consult.connection) watchRemoteTracks(null, consult.connection, 'consult-audio');
    consult.on('confirmed', () => {
      if (!app.consult || app.consult.session !== consult) return;
      app.consult.established = true;
      attachRemoteFromReceivers(consult, 'consult-audio');
      setText('consult-status', t('consult_connected', { t: target }));
      renderCall();
    });
    const over = (failed) => {
      if (!app.consult || app.consult.session !== consult) return;
      app.consult = null;
      exposeForTests();
      $('consult-audio').srcObject = null;
      setText('consult-status', failed ? t('consult_failed', { t: target }) : t('consult_ended'));
      renderCall();
    };
    consult.on('failed', () => over(true));
    consult.on('ended', () => over(false));
    setText('consult-status', t('consult_calling', { t: target }));
    renderCall();
  }

  function cancelConsult() {
    const consult = app.consult;
    if (!consult) return;
    app.consult = null;
    exposeForTests();
    try { if (!consult.session.isEnded()) consult.session.terminate(); } catch (e) { /* gone */ }
    $('consult-audio').srcObject = null;
    setText('consult-status', t('consult_ended'));
    const s = activeSession();
    const c = app.call;
    if (s && c.held && !c.holdBusy) {
      c.holdBusy = s.unhold({}, () => { c.holdBusy = false; renderCall(); });
    }
    renderCall();
  }

  function fillTransferOptions(practice) {
    const list = $('transfer-options');
    list.textContent = '';
    const add = (value, label) => {
      const opt = document.createElement('option');
      opt.value = value;
      opt.label = label;
      opt.textContent = label;
      list.appendChild(opt);
    };
    if (practice) for (const tr of practice.transfers || []) add(tr.code, tr.label);
    const me = app.me || {};
    for (const c of me.colleagues || []) add(c.username, c.display_name || c.username);
    for (const p of me.pools || []) add(p.id, p.name || p.id);
  }

  // ------------------------------------------------------------ call render

  function renderCall() {
    const c = app.call;
    const status = c ? c.status : 'idle';
    const statusEl = $('call-status');
    statusEl.setAttribute('data-status', status);
    statusEl.setAttribute('data-direction', c ? c.direction : 'none');
    let text;
    if (!c) text = t('status_idle');
    else if (status === 'ringing') text = c.direction === 'incoming' ? t('status_ringing_in', { p: c.practiceName || '' }) : t('status_ringing_out');
    else if (status === 'ended') {
      const cause = c.endCause ? causeLabel(c.endCause) : null;
      text = cause ? t('status_ended_cause', { c: cause }) : t('status_ended');
    }
    else text = t('status_' + status);
    setText(statusEl, text);

    show('offer', !!c);
    show('no-call', !c);
    document.body.classList.toggle('ringing', !!c && status === 'ringing' && c.direction === 'incoming');
    if (c) renderOffer(c);
    renderCard(practiceById(c && c.practiceId ? c.practiceId : app.focusPractice));

    const live = !!c && status !== 'ended';
    const up = live && (status === 'connected' || status === 'held');
    $('btn-answer').disabled = !(live && status === 'ringing' && c.direction === 'incoming' && !c.answering);
    $('btn-hangup').disabled = !live;
    const hold = $('btn-hold');
    hold.disabled = !up || !!app.consult;
    hold.setAttribute('aria-busy', c && c.holdBusy ? 'true' : 'false');
    hold.setAttribute('data-held', c && c.held ? 'true' : 'false');
    hold.setAttribute('aria-pressed', c && c.held ? 'true' : 'false');
    setText(hold, c && c.held ? t('btn_unhold') : t('btn_hold'));
    const mute = $('btn-mute');
    mute.disabled = !up;
    mute.setAttribute('data-muted', c && c.muted ? 'true' : 'false');
    mute.setAttribute('aria-pressed', c && c.muted ? 'true' : 'false');
    setText(mute, c && c.muted ? t('btn_unmute') : t('btn_mute'));
    for (const b of document.querySelectorAll('#dtmf-pad button.dtmf')) b.disabled = status !== 'connected';
    $('btn-blind-transfer').disabled = !up || !!app.consult;
    const att = $('btn-attended-transfer');
    att.disabled = !up || (!!app.consult && !app.consult.established);
    setText(att, app.consult ? t('btn_attended_complete') : t('btn_attended_transfer'));
    show('btn-consult-cancel', !!app.consult);
    $('transfer-target').disabled = !up || !!app.consult;
    for (const b of document.querySelectorAll('#card-transfers button.transfer')) b.disabled = !up || !!app.consult;
    renderDialler();
    exposeForTests();
  }

  function causeLabel(cause) {
    const C = (typeof JsSIP !== 'undefined' && JsSIP.C && JsSIP.C.causes) || {};
    switch (cause) {
      case C.BUSY: return t('cause_busy');
      case C.REJECTED: return t('cause_rejected');
      case C.CANCELED: return t('cause_canceled');
      case C.NO_ANSWER: return t('cause_no_answer');
      case C.UNAVAILABLE: return t('cause_unavailable');
      case C.NOT_FOUND: return t('cause_not_found');
      case C.BYE: return null;
      default: return t('cause_other');
    }
  }

  function specialtyLabel(code) {
    if (!code) return '';
    const key = 'spec_' + code;
    const s = t(key);
    return s === key ? code.charAt(0).toUpperCase() + code.slice(1) : s;
  }

  function renderOffer(c) {
    const p = practiceById(c.practiceId);
    setText('offer-practice', c.practiceName || (p ? p.name : t('unknown_practice')));
    setText('offer-specialty', p ? specialtyLabel(p.specialty) : '');
    setText('offer-caller', c.direction === 'outgoing' || c.caller ? fmtNumber(c.caller) : t('anonymous'));
    setText('offer-triage', c.triage ? [c.triage.digit, c.triage.label].filter(Boolean).join(' — ') : (c.direction === 'outgoing' ? '—' : t('no_triage')));
    renderWait(c);
    const tag = $('offer-callback');
    if (c.callback && c.callback.attempt) {
      setText(tag, t('callback_offer', { n: c.callback.attempt, t: fmtDuration(c.callback.requestedAgo || 0) }));
      tag.hidden = false;
    } else if (c.direction === 'outgoing') {
      setText(tag, t('outbound_offer'));
      tag.hidden = false;
    } else {
      tag.hidden = true;
    }
  }

  // Waited time: what the header said, counting on while it rings.
  function renderWait(c) {
    if (!Number.isFinite(c.waitAtOffer)) { setText('offer-wait', '—'); return; }
    const until = c.answeredAt || (c.status === 'ringing' ? Date.now() : c.offeredAt);
    setText('offer-wait', fmtDuration(c.waitAtOffer + (until - c.offeredAt) / 1000));
  }

  // The card of the call's practice, or of the practice in focus when idle.
  function renderCard(p) {
    show('practice-card', !!p);
    setText('card-practice', p ? '— ' + p.name : '');
    const card = (p && p.card) || {};
    setText('card-summary', card.summary || '');
    show('card-summary', !!card.summary);
    setText('card-hours', (p && p.hours_today) || '—');
    const entries = $('card-entries');
    const entryKey = JSON.stringify(card.entries || []);
    if (entries.getAttribute('data-for') !== entryKey) {
      entries.setAttribute('data-for', entryKey);
      entries.textContent = '';
      for (const e of card.entries || []) {
        const div = document.createElement('div');
        const dt = document.createElement('dt');
        dt.textContent = e.label;
        const dd = document.createElement('dd');
        dd.textContent = e.text;
        div.appendChild(dt);
        div.appendChild(dd);
        entries.appendChild(div);
      }
    }
    const box = $('card-transfers');
    const transfers = (p && p.transfers) || [];
    const trKey = (p ? p.id : '') + JSON.stringify(transfers);
    if (box.getAttribute('data-for') !== trKey) {
      box.setAttribute('data-for', trKey);
      box.textContent = '';
      for (const tr of transfers) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'transfer';
        b.setAttribute('data-target', tr.code);
        const code = document.createElement('span');
        code.className = 'code';
        code.textContent = tr.code;
        b.appendChild(code);
        b.appendChild(document.createTextNode(' ' + tr.label));
        b.addEventListener('click', () => selectTransferTarget(tr.code));
        box.appendChild(b);
      }
      if (!transfers.length) {
        const none = document.createElement('p');
        none.className = 'muted';
        none.setAttribute('data-i18n', 'no_transfers');
        none.textContent = t('no_transfers');
        box.appendChild(none);
      }
    }
    for (const b of box.querySelectorAll('button.transfer')) {
      b.setAttribute('aria-pressed', b.getAttribute('data-target') === $('transfer-target').value.trim() ? 'true' : 'false');
    }
  }

  // A card's transfer button picks the target; the agent then chooses blind
  // or attended transfer.
  function selectTransferTarget(code) {
    $('transfer-target').value = code;
    renderCall();
    $('btn-blind-transfer').focus();
  }

  // ------------------------------------------------------------- local tick

  // One-second display refresh: wrap-up countdown, callback deadlines, waited
  // time. No network here: data arrives by server-sent events.
  function startTick() {
    clearInterval(app.tick);
    app.tick = setInterval(() => {
      renderWrapUp();
      if (app.callbacks.length) renderCallbacks();
      if (app.call && app.call.status === 'ringing') renderWait(app.call);
    }, 1000);
  }

  // -------------------------------------------------------------- keyboard

  function onKeyDown(ev) {
    if (!app.me) return;
    const c = app.call;
    const ringing = c && c.direction === 'incoming' && c.status === 'ringing';
    const key = ev.key;
    const tag = (ev.target && ev.target.tagName) || '';
    const inControl = /^(INPUT|SELECT|TEXTAREA|BUTTON|A)$/.test(tag);
    if (ev.altKey && !ev.ctrlKey && !ev.metaKey && (ev.code === 'KeyA' || key === 'a' || key === 'A')) {
      if (ringing) { ev.preventDefault(); answer(); }
    } else if (ev.altKey && !ev.ctrlKey && !ev.metaKey && (ev.code === 'KeyH' || key === 'h' || key === 'H')) {
      if (activeSession()) { ev.preventDefault(); hangup(); }
    } else if (key === 'Enter' && ringing && (!inControl || ev.target === $('btn-answer'))) {
      ev.preventDefault();
      answer();
    } else if (key === 'Escape' && activeSession()) {
      ev.preventDefault();
      hangup();
    }
  }

  // ------------------------------------------------------------------ init

  function init() {
    try {
      const saved = window.localStorage && localStorage.getItem('permanence.console.lang');
      if (saved === 'en' || saved === 'fr') app.lang = saved;
    } catch (e) { /* storage disabled */ }

    $('login-form').addEventListener('submit', onLoginSubmit);
    $('lang-toggle').addEventListener('click', () => {
      app.lang = app.lang === 'fr' ? 'en' : 'fr';
      try { localStorage.setItem('permanence.console.lang', app.lang); } catch (e) { /* ignore */ }
      applyLanguage();
    });
    $('btn-signout').addEventListener('click', signOut);
    $('btn-pause').addEventListener('click', () => postState({ action: 'pause', reason: $('pause-reason').value }));
    $('btn-unpause').addEventListener('click', () => postState({ action: 'unpause' }));
    $('btn-login').addEventListener('click', () => postState({ action: 'login' }));
    $('btn-logout').addEventListener('click', () => postState({ action: 'logout' }));
    $('btn-answer').addEventListener('click', answer);
    $('btn-hangup').addEventListener('click', hangup);
    $('btn-hold').addEventListener('click', toggleHold);
    $('btn-mute').addEventListener('click', toggleMute);
    $('btn-blind-transfer').addEventListener('click', blindTransfer);
    $('btn-attended-transfer').addEventListener('click', attendedTransfer);
    $('btn-consult-cancel').addEventListener('click', cancelConsult);
    $('transfer-target').addEventListener('input', renderCall);
    for (const b of document.querySelectorAll('#dtmf-pad button.dtmf')) {
      b.addEventListener('click', () => sendDigit(b.getAttribute('data-digit')));
    }
    $('dialler-form').addEventListener('submit', onDialSubmit);
    $('dial-practice').addEventListener('change', () => {
      renderDialler();
      if (!app.call || app.call.status === 'ended') setFocusPractice($('dial-practice').value);
    });
    document.addEventListener('keydown', onKeyDown);
    // Closing the tab: unregister so that calls stop ringing here.
    window.addEventListener('pagehide', () => { if (app.ua) { try { app.ua.stop(); } catch (e) { /* ignore */ } } });

    exposeForTests();
    applyLanguage();
    $('username').focus();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
