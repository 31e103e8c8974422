import { expect } from 'chai';
import type { Presence } from '@herald/server';

/** A presence store under test. */
export interface PresenceFixture {
  presence: Presence;
  close(): Promise<void>;
}

/** The rules of the `Presence` interface (packages/server/src/presence.ts) on one node. */
export function presenceContract(name: string, make: () => Promise<PresenceFixture>): void {
  describe(`Presence contract: ${name}`, () => {
    let fx: PresenceFixture;
    beforeEach(async () => {
      fx = await make();
    });
    afterEach(async () => {
      await fx.close();
    });

    it('lists added members, anonymous ones with user null', async () => {
      expect(await fx.presence.members('room:1')).to.deep.equal([]);
      await fx.presence.add('room:1', { user: 'alice', conn: 'c1' });
      await fx.presence.add('room:1', { user: null, conn: 'c2' });
      await fx.presence.add('room:1', { user: 'alice', conn: 'c3' });
      expect(await fx.presence.members('room:1')).to.have.deep.members([
        { user: 'alice', conn: 'c1' },
        { user: null, conn: 'c2' },
        { user: 'alice', conn: 'c3' },
      ]);
    });

    it('keeps one entry per connection', async () => {
      await fx.presence.add('room:2', { user: 'bob', conn: 'c1' });
      await fx.presence.add('room:2', { user: 'bob', conn: 'c1' });
      expect(await fx.presence.members('room:2')).to.deep.equal([{ user: 'bob', conn: 'c1' }]);
    });

    it('removes members, and ignores unknown ones', async () => {
      await fx.presence.add('room:3', { user: 'bob', conn: 'c1' });
      await fx.presence.add('room:3', { user: 'carol', conn: 'c2' });
      await fx.presence.remove('room:3', { user: 'bob', conn: 'c1' });
      await fx.presence.remove('room:3', { user: 'zed', conn: 'nope' });
      await fx.presence.remove('room:none', { user: 'zed', conn: 'nope' });
      expect(await fx.presence.members('room:3')).to.deep.equal([{ user: 'carol', conn: 'c2' }]);
      await fx.presence.remove('room:3', { user: 'carol', conn: 'c2' });
      expect(await fx.presence.members('room:3')).to.deep.equal([]);
    });

    it('keeps channels apart', async () => {
      await fx.presence.add('room:a', { user: 'bob', conn: 'c1' });
      await fx.presence.add('room:b', { user: 'eve', conn: 'c2' });
      expect(await fx.presence.members('room:a')).to.deep.equal([{ user: 'bob', conn: 'c1' }]);
      expect(await fx.presence.members('room:b')).to.deep.equal([{ user: 'eve', conn: 'c2' }]);
    });
  });
}
