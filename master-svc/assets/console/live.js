// Live data by short polling: each page asks again for what it shows every few seconds, while
// the tab is visible. Polling rather than server-sent events because the browser's EventSource
// cannot send the Authorization header the API needs, and because every poll is a plain,
// documented API call that an operator can repeat with curl.

import { useEffect, useRef, useState } from './vendor/preact-htm.js';

/**
 * Loads `load()` now and every `everyMs` while `deps` stay the same. Answers
 * `[data, error, refresh]`; `data` keeps the last good answer while an error is shown.
 */
export function usePoll(load, deps, everyMs = 2000) {
  const [state, setState] = useState({ data: undefined, error: null });
  const [round, setRound] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let stopped = false;
    let timer;
    const run = async () => {
      if (!document.hidden) {
        try {
          const data = await loadRef.current();
          if (!stopped) setState({ data, error: null });
        } catch (error) {
          if (!stopped) setState((old) => ({ data: old.data, error }));
        }
      }
      if (!stopped && everyMs) timer = setTimeout(run, everyMs);
    };
    run();
    return () => { stopped = true; clearTimeout(timer); };
  }, [...deps, round]);
  // A new `deps` starts over: the old data belongs to something else.
  useEffect(() => () => setState({ data: undefined, error: null }), deps);
  return [state.data, state.error, () => setRound((n) => n + 1)];
}
