// The wire contract of docs/protocol.md, checked with the official socket.io-client.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  causerie, connect, connectError, join, next, request, startServer, unconsumed,
} from './fixture.js';

describe('a Causerie server', () => {
  let server;
  const sockets = [];
  const open = async (auth, options) => {
    const joined = await join(server.url, auth, options);
    sockets.push(joined.socket);
    return joined;
  };
  before(async () => { server = await startServer(); });
  after(() => { sockets.forEach((s) => s.close()); server.cleanup(); });

  for (const transports of [['websocket'], ['polling']]) {
    test(`welcomes a client over ${transports[0]}`, async () => {
      const { welcome, socket } = await open(causerie('Ada'), { transports });
      assert.equal(socket.io.engine.transport.name, transports[0]);
      assert.equal(welcome.user.name, 'Ada');
      assert.equal(welcome.room, 'general');
      assert.ok(welcome.token.startsWith('v1.'));
      assert.ok(welcome.rooms.includes('general'));
      assert.ok(welcome.online.some((u) => u.id === welcome.user.id));
      assert.equal(welcome.limits.maxMessageChars, 4000);
      assert.equal(welcome.limits.maxPayloadBytes, 65536);
      assert.deepEqual(Object.keys(welcome.server), ['name', 'version']);
    });
  }

  test('broadcasts a message to every client, sender included, after acking it', async () => {
    const { socket: ada } = await open(causerie('Ada'), { transports: ['websocket'] });
    const { socket: bob } = await open(causerie('Bob'), { transports: ['polling'] });
    const ack = await request(ada, 'message', { id: 'js-1', room: 'general', text: 'bonjour' });
    assert.equal(ack.ok, true);
    const { message } = ack;
    assert.equal(message.clientId, 'js-1');
    assert.equal(message.text, 'bonjour');
    assert.equal(message.author.name, 'Ada');
    assert.match(message.sentAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Number.isInteger(message.seq) && message.seq >= 1);
    assert.deepEqual(await next(ada, 'message'), message);
    assert.deepEqual(await next(bob, 'message'), message);
  });

  test('stores a retried client id once and broadcasts it once', async () => {
    const { socket: ada } = await open(causerie('Ada'));
    const { socket: bob } = await open(causerie('Bob'));
    const first = await request(ada, 'message', { id: 'retry-me', text: 'once' });
    const again = await request(ada, 'message', { id: 'retry-me', text: 'once' });
    assert.deepEqual(again, first);
    assert.deepEqual(await next(bob, 'message'), first.message);
    assert.deepEqual(await unconsumed(bob, 'message'), []);
  });

  for (const transports of [['websocket'], ['polling']]) {
    test(`edits and deletes a message as entries of the room's log, over ${transports[0]}`, async () => {
      const { socket: ada } = await open(causerie('Ada'), { transports });
      const { socket: bob } = await open(causerie('Bob'), { transports: ['websocket'] });
      const { message } = await request(ada, 'message', { id: `typo-${transports[0]}`, text: 'helo' });
      await next(bob, 'message');
      const edited = await request(ada, 'edit', { id: `fix-${transports[0]}`, target: message.seq, text: 'hello' });
      assert.equal(edited.ok, true);
      assert.equal(edited.change.kind, 'edit');
      assert.equal(edited.change.target, message.seq);
      assert.equal(edited.change.seq, message.seq + 1);
      assert.deepEqual(await next(bob, 'change'), edited.change);
      const refused = await request(bob, 'delete', { id: `not-mine-${transports[0]}`, target: message.seq });
      assert.equal(refused.error.code, 'forbidden');
      const deleted = await request(ada, 'delete', { id: `gone-${transports[0]}`, target: message.seq });
      assert.equal(deleted.change.kind, 'delete');
      assert.equal(deleted.change.text, undefined);
      assert.deepEqual(await next(bob, 'change'), deleted.change);
      const page = await request(bob, 'history', { after: message.seq - 1 });
      assert.deepEqual(page.messages.map((m) => [m.seq, m.text, m.deleted ?? false]), [[message.seq, '', true]]);
      assert.deepEqual(page.changes.map((c) => c.seq), [edited.change.seq, deleted.change.seq]);
    });
  }

  for (const transports of [['websocket'], ['polling']]) {
    test(`keeps a read marker per user, told to their other connections, over ${transports[0]}`, async () => {
      const room = `unread-${transports[0]}`;
      const { socket: laptop, welcome } = await open(causerie('Ada'), { transports });
      const { socket: phone } = await open(causerie('Ada', { token: welcome.token }), { transports: ['websocket'] });
      const { socket: bob } = await open(causerie('Bob'));
      for (const socket of [laptop, phone, bob]) {
        const joined = await request(socket, 'join', { room });
        assert.equal(joined.ok, true);
        assert.deepEqual(joined.read, { room, seq: 0, unread: 0, mentions: 0, head: 0 });
      }
      const sent = [];
      for (let i = 1; i <= 3; i += 1) {
        const mentions = i === 2 ? [welcome.user.id] : [];
        sent.push((await request(bob, 'message', { id: `${room}-${i}`, room, text: `news ${i}`, mentions })).message);
      }
      const read = await request(laptop, 'read', { room, seq: sent[0].seq });
      assert.deepEqual(read, { ok: true, room, seq: sent[0].seq, unread: 2, mentions: 1, head: sent[2].seq });
      assert.deepEqual(sent[1].mentions, [welcome.user.id]);
      const told = await next(phone, 'read');
      assert.deepEqual(told, { room, seq: sent[0].seq, unread: 2, mentions: 1, head: sent[2].seq });
      // Bob, another user, hears nothing of Ada's marker.
      assert.deepEqual(await unconsumed(bob, 'read'), []);
      const refused = await request(laptop, 'read', { room: 'not-joined', seq: 1 });
      assert.equal(refused.error.code, 'not_joined');
      const invalid = await request(laptop, 'read', { room, seq: 'all' });
      assert.equal(invalid.error.code, 'invalid');
    });
  }

  for (const transports of [['websocket'], ['polling']]) {
    test(`replies quote their original as it is now, and history shows a message in its context, over ${transports[0]}`, async () => {
      const room = `replies-${transports[0]}`;
      const { socket: ada } = await open(causerie('Ada'), { transports });
      const { socket: bob } = await open(causerie('Bob'));
      for (const socket of [ada, bob]) assert.equal((await request(socket, 'join', { room })).ok, true);
      const sent = [];
      for (let i = 1; i <= 9; i += 1) {
        sent.push((await request(ada, 'message', { id: `${room}-${i}`, room, text: `line ${i}\nmore` })).message);
      }
      const answer = await request(bob, 'message', { id: `${room}-answer`, room, text: 'yes', replyTo: sent[1].seq });
      assert.equal(answer.ok, true);
      assert.deepEqual(answer.message.replyTo, { seq: sent[1].seq, author: sent[1].author, excerpt: 'line 2' });
      const refused = await request(bob, 'message', { id: `${room}-nothing`, room, text: 'to nothing', replyTo: 999 });
      assert.equal(refused.error.code, 'not_found');
      await request(ada, 'delete', { id: `${room}-gone`, room, target: sent[1].seq });
      const around = await request(ada, 'history', { room, around: sent[4].seq, limit: 4 });
      assert.deepEqual(around.messages.map((m) => m.seq), [sent[3].seq, sent[4].seq, sent[5].seq, sent[6].seq]);
      const latest = await request(ada, 'history', { room, limit: 3 });
      const quoted = latest.messages.find((m) => m.seq === answer.message.seq);
      assert.deepEqual([quoted.replyTo.excerpt, quoted.replyTo.deleted], ['', true]);
    });
  }

  for (const transports of [['websocket'], ['polling']]) {
    test(`toggles reactions as entries of the room's log, over ${transports[0]}`, async () => {
      const { socket: ada } = await open(causerie('Ada'), { transports });
      const { socket: bob } = await open(causerie('Bob'), { transports: ['websocket'] });
      const { message } = await request(ada, 'message', { id: `react-${transports[0]}`, text: 'lunch?' });
      await next(bob, 'message');
      const added = await request(bob, 'react', { id: `r1-${transports[0]}`, target: message.seq, emoji: '🎉' });
      assert.deepEqual([added.change.kind, added.change.emoji, added.change.seq], ['react', '🎉', message.seq + 1]);
      assert.deepEqual(await next(ada, 'change'), added.change);
      const page = await request(ada, 'history', { after: message.seq - 1, limit: 1 });
      assert.deepEqual(page.messages[0].reactions, [{ emoji: '🎉', count: 1, users: [added.change.author] }]);
      const taken = await request(bob, 'react', { id: `r2-${transports[0]}`, target: message.seq, emoji: '🎉' });
      assert.equal(taken.change.kind, 'unreact');
      const refused = await request(bob, 'react', { id: `r3-${transports[0]}`, target: message.seq, emoji: 'yes' });
      assert.equal(refused.error.code, 'invalid');
    });
  }

  for (const transports of [['websocket'], ['polling']]) {
    test(`searches only the rooms the connection is in, over ${transports[0]}`, async () => {
      const word = `kumquat${transports[0]}`;
      const { socket: ada } = await open(causerie('Ada'), { transports });
      const { socket: bob } = await open(causerie('Bob'));
      assert.equal((await request(bob, 'join', { room: `hidden-${transports[0]}` })).ok, true);
      await request(bob, 'message', { id: `${word}-1`, text: `a ${word} here` });
      await request(bob, 'message', { id: `${word}-2`, room: `hidden-${transports[0]}`, text: `a ${word} there` });
      const found = await request(ada, 'search', { query: word.slice(0, 6) + word.slice(6) });
      assert.deepEqual(found.results.map((m) => m.text), [`a ${word} here`]);
      const refused = await request(ada, 'search', { query: '' });
      assert.equal(refused.error.code, 'invalid');
    });
  }

  for (const transports of [['websocket'], ['polling']]) {
    test(`opens a direct conversation only its two members can join, over ${transports[0]}`, async () => {
      const { socket: ada, welcome: adaWelcome } = await open(causerie('Ada'), { transports });
      const { socket: bob, welcome: bobWelcome } = await open(causerie('Bob'), { transports });
      const { socket: carol } = await open(causerie('Carol'));
      const opened = await request(ada, 'direct', { user: bobWelcome.user.id });
      assert.deepEqual(opened.peer, bobWelcome.user);
      assert.deepEqual(await next(bob, 'direct'), { room: opened.room, peer: adaWelcome.user });
      for (const socket of [ada, bob]) assert.equal((await request(socket, 'join', { room: opened.room })).ok, true);
      const { message } = await request(ada, 'message', { id: `dm-${transports[0]}`, room: opened.room, text: 'just us' });
      assert.deepEqual(await next(bob, 'message'), message);
      assert.equal((await request(carol, 'join', { room: opened.room })).error.code, 'forbidden');
      assert.equal((await request(carol, 'direct', { user: 'nobody-here' })).error.code, 'not_found');
      assert.deepEqual((await unconsumed(carol, 'message')).filter((m) => m.room === opened.room), []);
    });
  }

  test('pages history before and after a seq', async () => {
    const { socket: ada } = await open(causerie('Ada'));
    assert.equal((await request(ada, 'join', { room: 'paging' })).ok, true);
    for (let i = 1; i <= 7; i += 1) {
      await request(ada, 'message', { id: `p-${i}`, room: 'paging', text: `m${i}` });
    }
    const seqs = (page) => page.messages.map((m) => m.seq);
    const latest = await request(ada, 'history', { room: 'paging', limit: 3 });
    assert.deepEqual([seqs(latest), latest.hasMore], [[5, 6, 7], true]);
    const older = await request(ada, 'history', { room: 'paging', before: 5, limit: 3 });
    assert.deepEqual([seqs(older), older.hasMore], [[2, 3, 4], true]);
    const newer = await request(ada, 'history', { room: 'paging', after: 4 });
    assert.deepEqual([seqs(newer), newer.hasMore], [[5, 6, 7], false]);
  });

  test('brings the same user back with the token', async () => {
    const { socket, welcome } = await open(causerie('Ada'));
    socket.close();
    const { welcome: again } = await open({ protocol: 3, token: welcome.token });
    assert.deepEqual(again.user, welcome.user);
  });

  test('keeps seed clients working both ways', async () => {
    const { socket: ada } = await open(causerie('Ada'));
    const { socket: seed, welcome } = await open(undefined);
    assert.match(welcome.user.name, /^guest-\d{4}$/);
    seed.emit('message', 'hello from the old app');
    const stored = await next(ada, 'message');
    assert.equal(stored.text, 'hello from the old app');
    assert.equal(stored.author.name, welcome.user.name);
    assert.equal(await next(seed, 'message'), `${welcome.user.name}: hello from the old app`);
    await request(ada, 'message', { id: 'to-seed', text: 'hi old app' });
    assert.equal(await next(seed, 'message'), 'Ada: hi old app');
  });

  test('tells a room who arrives as a delta with the count, pages who is online, and relays typing', async () => {
    const { socket: ada } = await open(causerie('Ada'));
    assert.equal((await request(ada, 'join', { room: 'cosy' })).ok, true);
    const { socket: bob, welcome: bobWelcome } = await open(causerie('Bob'));
    const joined = await request(bob, 'join', { room: 'cosy' });
    assert.deepEqual(joined.online.map((u) => u.name), ['Ada', 'Bob']);
    assert.equal(joined.onlineCount, 2);
    // Changes come coalesced: Ada may first hear of Bob in general, or of herself.
    let cosy;
    do { cosy = await next(ada, 'presence'); }
    while (!(cosy.room === 'cosy' && cosy.joined.some((u) => u.id === bobWelcome.user.id)));
    assert.equal(cosy.count, 2);
    assert.deepEqual(cosy.left, []);
    assert.equal(cosy.truncated, false);

    const first = await request(ada, 'who', { room: 'cosy', limit: 1 });
    assert.deepEqual(first.users.map((u) => u.name), ['Ada']);
    assert.equal(first.count, 2);
    const second = await request(ada, 'who', { room: 'cosy', after: first.next, limit: 1 });
    assert.deepEqual(second.users, [bobWelcome.user]);
    assert.equal(second.next, undefined);
    assert.equal((await request(ada, 'who', { room: 'elsewhere' })).error.code, 'not_joined');

    bob.emit('typing', { room: 'cosy', typing: true });
    const typing = await next(ada, 'typing');
    assert.deepEqual(typing, { room: 'cosy', user: bobWelcome.user, typing: true });
  });

  test('lists rooms a page at a time, and by prefix', async () => {
    const { socket: ada, welcome } = await open(causerie('Ada'));
    assert.ok(welcome.rooms.includes('general'));
    for (const room of ['jazz', 'java', 'javascript', 'julia']) {
      assert.equal((await request(ada, 'join', { room })).ok, true);
    }
    const ja = await request(ada, 'rooms', { prefix: 'ja', limit: 2 });
    assert.deepEqual(ja.rooms, ['java', 'javascript']);
    const more = await request(ada, 'rooms', { prefix: 'ja', after: ja.next, limit: 2 });
    assert.deepEqual(more.rooms, ['jazz']);
    assert.equal(more.next, undefined);
    assert.equal((await request(ada, 'rooms', { prefix: 'Not A Room' })).error.code, 'invalid_room');
  });

  test('refuses bad input with stable codes and broadcasts none of it', async () => {
    const { socket: ada } = await open(causerie('Ada'));
    const { socket: bob } = await open(causerie('Bob'));
    const cases = [
      [{ text: 'no id' }, 'invalid'],
      ['a string from a Causerie client', 'invalid'],
      [{ id: 'b-1', text: '   ' }, 'empty'],
      [{ id: 'b-2', text: 'x'.repeat(4001) }, 'too_long'],
      [{ id: 'b-3', room: 'nowhere', text: 'hi' }, 'not_joined'],
    ];
    for (const [payload, code] of cases) {
      const ack = await request(ada, 'message', payload);
      assert.equal(ack.ok, false);
      assert.equal(ack.error.code, code, JSON.stringify(payload));
      assert.equal(typeof ack.error.message, 'string');
    }
    assert.equal((await request(ada, 'join', { room: 'Not Valid' })).error.code, 'invalid_room');
    assert.equal((await request(ada, 'history', { limit: 500 })).error.code, 'invalid');
    assert.deepEqual(await unconsumed(bob, 'message'), []);
    assert.equal(ada.connected, true);
  });
});

describe('a server with a join code', () => {
  let server;
  before(async () => { server = await startServer(['--join-code', 'sesame']); });
  after(() => server.cleanup());

  test('refuses a missing or wrong code with "unauthorized" and no event', async () => {
    for (const auth of [causerie('Ada'), causerie('Ada', { code: 'nope' }), undefined]) {
      const socket = connect(server.url, auth);
      const error = await connectError(socket);
      assert.match(error.message, /^unauthorized: /);
      assert.deepEqual(await unconsumed(socket, 'welcome'), []);
      socket.close();
    }
  });

  test('accepts the right code', async () => {
    const { socket, welcome } = await join(server.url, causerie('Ada', { code: 'sesame' }));
    assert.equal(welcome.user.name, 'Ada');
    socket.close();
  });

  test('refuses an invalid name with "invalid_name"', async () => {
    const socket = connect(server.url, causerie('x'.repeat(40), { code: 'sesame' }));
    assert.match((await connectError(socket)).message, /^invalid_name: /);
    socket.close();
  });
});

describe('a server that allows one browser origin', () => {
  let server;
  before(async () => { server = await startServer(['--cors-origin', 'https://chat.example.org']); });
  after(() => server.cleanup());

  // `addTrailingSlash: false` asks for `/socket.io?...`, which the server answers as well.
  for (const [transports, addTrailingSlash] of [
    [['websocket'], true], [['polling'], true], [['websocket'], false], [['polling'], false],
  ]) {
    const path = addTrailingSlash ? '/socket.io/' : '/socket.io';
    test(`refuses a page of another origin over ${transports[0]} at ${path}, not apps or its own pages`, async () => {
      const evil = connect(server.url, causerie('Eve'), {
        transports, addTrailingSlash, extraHeaders: { Origin: 'https://evil.example' },
      });
      await connectError(evil);
      assert.deepEqual(await unconsumed(evil, 'welcome'), []);
      evil.close();
      for (const extraHeaders of [{ Origin: 'https://chat.example.org' }, {}]) {
        const { socket, welcome } = await join(server.url, causerie('Ada'), { transports, addTrailingSlash, extraHeaders });
        assert.equal(welcome.user.name, 'Ada');
        socket.close();
      }
    });
  }
});

describe('flood control', () => {
  let server;
  before(async () => { server = await startServer(['--rate-limit', '1', '--rate-burst', '2']); });
  after(() => server.cleanup());

  test('refuses a flood with "rate_limited" and keeps the connection', async () => {
    const { socket } = await join(server.url, causerie('Ada'));
    const acks = [];
    for (let i = 0; i < 4; i += 1) acks.push(await request(socket, 'message', { id: `f-${i}`, text: 'x' }));
    assert.deepEqual(acks.map((a) => a.ok), [true, true, false, false]);
    assert.equal(acks[2].error.code, 'rate_limited');
    assert.equal(socket.connected, true);
    socket.close();
  });
});

describe('payload limits', () => {
  let server;
  // A text limit far above 64 KiB, so that only the payload limit can refuse.
  before(async () => { server = await startServer(['--max-message-chars', '1000000']); });
  after(() => server.cleanup());

  for (const transports of [['websocket'], ['polling']]) {
    test(`refuse an oversized packet over ${transports[0]} without harming others`, async () => {
      const { socket: bob } = await join(server.url, causerie('Bob'));
      const { socket: mallory } = await join(server.url, causerie('Mallory'), { transports });
      const fits = await request(mallory, 'message', { id: `fits-${transports[0]}`, text: 'x'.repeat(60 * 1024) });
      assert.equal(fits.ok, true, 'just under the limit is accepted');
      assert.equal((await next(bob, 'message')).clientId, `fits-${transports[0]}`);
      const dropped = new Promise((r) => mallory.on('disconnect', r));
      mallory.emit('message', { id: 'big', text: 'x'.repeat(100 * 1024) });
      await dropped;
      assert.deepEqual(await unconsumed(bob, 'message'), []);
      const history = await request(bob, 'history', {});
      assert.ok(history.messages.every((m) => m.clientId !== 'big'));
      assert.equal(bob.connected, true);
      bob.close();
    });
  }
});

describe('a restarted server', () => {
  test('keeps its history, and exits cleanly on SIGTERM', async () => {
    let server = await startServer();
    try {
      const { socket } = await join(server.url, causerie('Ada'));
      const ack = await request(socket, 'message', { id: 'keep', text: 'still here?' });
      socket.close();
      const status = await server.stop();
      assert.deepEqual(status, { code: 0, signal: null });
      server = await server.restart();
      const { socket: again, welcome } = await join(server.url, causerie('Ada'));
      assert.deepEqual(welcome.history, [ack.message]);
      again.close();
    } finally {
      server.cleanup();
    }
  });
});
