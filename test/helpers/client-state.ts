import type { Client, State, StateChange } from '@herald/client';

/** Resolves with the next `state` change of `client` into `state`; rejects naming it after `ms`. */
export function nextState(client: Client, state: State, ms = 15_000): Promise<StateChange> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`state ${state} not reached within ${ms} ms (now ${client.state})`));
    }, ms);
    const off = client.on('state', (change) => {
      if (change.newState !== state) return;
      clearTimeout(timer);
      off();
      resolve(change);
    });
  });
}
