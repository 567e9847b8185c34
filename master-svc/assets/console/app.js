// The console's shell: sign-in, the header with its navigation and connection state, and the
// router from the URL's hash (`#/queues/default`, `#/tasks?state=failed`) to a page. Every
// page is a client of the API (api.js); the console can do nothing the API cannot.

import { html, render, useEffect, useState } from './vendor/preact-htm.js';
import { api, onConnection, onSignedOut, session } from './api.js';
import { Problem } from './ui.js';
import { Overview } from './pages/overview.js';
import { Queue } from './pages/queue.js';
import { Tasks } from './pages/tasks.js';
import { TaskPage } from './pages/task.js';
import { Workers } from './pages/workers.js';
import { Audit } from './pages/audit.js';

/** The route in the hash: its path segments and its query. */
function route() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

function useRoute() {
  const [current, setCurrent] = useState(route());
  useEffect(() => {
    const changed = () => setCurrent(route());
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  return current;
}

function page({ parts, params }, me) {
  const [first, second] = parts;
  if (!first) return html`<${Overview} me=${me} />`;
  if (first === 'queues' && second) return html`<${Queue} name=${second} me=${me} />`;
  if (first === 'tasks' && second) return html`<${TaskPage} id=${second} me=${me} />`;
  if (first === 'tasks') return html`<${Tasks} params=${params} me=${me} />`;
  if (first === 'workers') return html`<${Workers} me=${me} />`;
  if (first === 'audit') return html`<${Audit} me=${me} />`;
  return html`<h1>Not found</h1><p>The console has no page <code>${location.hash}</code>. <a href="#/">Overview</a></p>`;
}

const ACTING_ROLES = ['operator', 'admin'];

/** What the signed-in token may do, as `GET /whoami` says: read-only tokens see no actions. */
function identity(whoami) {
  return { ...whoami, canAct: ACTING_ROLES.includes(whoami.role) };
}

function SignIn({ onSignedIn, refused }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(refused);
  const submit = async (event) => {
    event.preventDefault();
    session.token = token.trim();
    try {
      onSignedIn(identity(await api('GET', 'whoami')));
    } catch (e) {
      session.token = null;
      setError(e);
    }
  };
  return html`<main id="main" class="sign-in">
    <h1>Leasehold console</h1>
    <form onSubmit=${submit}>
      <label for="token">API token</label>
      <input id="token" type="password" autocomplete="off" required value=${token}
        onInput=${(e) => setToken(e.target.value)} autofocus />
      <p class="muted">Kept for this tab only. What the console shows and lets you do is what
        the token's role may do in the API.</p>
      <button type="submit" class="primary">Sign in</button>
      <${Problem} error=${error} what="Not signed in" />
    </form>
  </main>`;
}

function Connection() {
  const [online, setOnline] = useState(true);
  useEffect(() => onConnection(setOnline), []);
  return online
    ? html`<span class="conn ok" role="status" title="Updating every few seconds">● Live</span>`
    : html`<span class="conn lost" role="alert">● Connection lost: retrying</span>`;
}

const THEMES = ['auto', 'light', 'dark'];

function ThemeToggle() {
  const [theme, setTheme] = useState(localStorage.getItem('leasehold.theme') || 'auto');
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('leasehold.theme', theme);
  }, [theme]);
  const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  return html`<button type="button" class="link" onClick=${() => setTheme(next)}
    title="Colour theme">Theme: ${theme}</button>`;
}

function Header({ me, current, signOut }) {
  const at = current.parts[0] || '';
  const link = (href, label, key) => html`<a href=${href} aria-current=${at === key ? 'page' : undefined}>${label}</a>`;
  return html`<header class="top">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
    <a class="brand" href="#/">Leasehold</a>
    <nav aria-label="Console">
      ${link('#/', 'Overview', '')}
      ${link('#/tasks', 'Tasks', 'tasks')}
      ${link('#/workers', 'Workers', 'workers')}
      ${link('#/audit', 'Audit', 'audit')}
      <a href="../docs">API</a>
    </nav>
    <span class="spacer"></span>
    <${Connection} />
    <span class="who" title=${me.queues ? `queues: ${me.queues.join(', ')}` : 'every queue'}>
      ${me.name} · <span class="role" data-role=${me.role}>${me.role}</span>
    </span>
    <${ThemeToggle} />
    ${me.name !== 'anonymous' ? html`<button type="button" class="link" onClick=${signOut}>Sign out</button>` : ''}
  </header>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  const [refused, setRefused] = useState(null);
  const current = useRoute();
  useEffect(() => {
    api('GET', 'whoami').then((w) => setMe(identity(w))).catch((e) => {
      if (e.status !== 401) setRefused(e);
      setMe(null);
    });
    return onSignedOut(() => { session.token = null; setMe(null); });
  }, []);
  if (me === undefined) return html`<p class="loading">Connecting to the master…</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${setMe} refused=${refused} />`;
  const signOut = () => { session.token = null; setMe(null); };
  return html`<${Header} me=${me} current=${current} signOut=${signOut} />
    <main id="main" tabindex="-1">${page(current, me)}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
