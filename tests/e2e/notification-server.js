// A notification server on the session bus, as a desktop runs one (the Desktop Notifications
// Specification's org.freedesktop.Notifications): it keeps what the app asks to show, and
// plays a click on one. The headless session has no desktop to show them.
import { EventEmitter } from 'node:events';
import dbus from 'dbus-next';

const { Interface } = dbus.interface;

class Notifications extends Interface {
  constructor() {
    super('org.freedesktop.Notifications');
    /** What was shown, in order: `{id, summary, body, actions}`. */
    this.shown = [];
    /** The ids the app closed. */
    this.closed = [];
    this.nextId = 1;
    this.events = new EventEmitter();
  }

  Notify(appName, replacesId, appIcon, summary, body, actions) {
    const id = this.nextId;
    this.nextId += 1;
    this.shown.push({ id, summary, body, actions });
    this.events.emit('shown');
    return id;
  }

  GetCapabilities() { return ['body', 'actions']; }

  GetServerInformation() { return ['causerie-tests', 'causerie', '1', '1.2']; }

  CloseNotification(id) {
    this.closed.push(id);
    this.events.emit('closed');
    this.NotificationClosed(id, 3);
  }

  ActionInvoked(id, action) { return [id, action]; }

  NotificationClosed(id, reason) { return [id, reason]; }
}

Notifications.configureMembers({
  methods: {
    Notify: { inSignature: 'susssasa{sv}i', outSignature: 'u' },
    GetCapabilities: { inSignature: '', outSignature: 'as' },
    GetServerInformation: { inSignature: '', outSignature: 'ssss' },
    CloseNotification: { inSignature: 'u', outSignature: '' },
  },
  signals: {
    ActionInvoked: { signature: 'us' },
    NotificationClosed: { signature: 'uu' },
  },
});

/** Owns the notification service of this session's bus until `stop()`. */
export async function startNotificationServer() {
  const bus = dbus.sessionBus();
  const service = new Notifications();
  const reply = await bus.requestName('org.freedesktop.Notifications', dbus.NameFlag.DO_NOT_QUEUE);
  if (reply !== dbus.RequestNameReply.PRIMARY_OWNER) throw new Error('another notification server runs on this bus');
  bus.export('/org/freedesktop/Notifications', service);
  return {
    /** What the app asked to show so far. */
    get shown() { return service.shown; },
    /** Resolves with what was shown once there are `count` notifications; rejects after 10 s. */
    shownCount(count) {
      if (service.shown.length >= count) return Promise.resolve(service.shown);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          service.events.off('shown', check);
          reject(new Error(`${count} notifications expected, shown: ${JSON.stringify(service.shown)}`));
        }, 10_000);
        const check = () => {
          if (service.shown.length < count) return;
          clearTimeout(timer);
          service.events.off('shown', check);
          resolve(service.shown);
        };
        service.events.on('shown', check);
      });
    },
    /** Resolves once the app closed notification `id`; rejects after 10 s. */
    closedSoon(id) {
      if (service.closed.includes(id)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          service.events.off('closed', check);
          reject(new Error(`notification ${id} never closed; closed: ${JSON.stringify(service.closed)}`));
        }, 10_000);
        const check = () => {
          if (!service.closed.includes(id)) return;
          clearTimeout(timer);
          service.events.off('closed', check);
          resolve();
        };
        service.events.on('closed', check);
      });
    },
    /** The user clicks notification `id`, as the server reports it. */
    click(id) { service.ActionInvoked(id, 'default'); },
    async stop() {
      await bus.releaseName('org.freedesktop.Notifications').catch(() => {});
      bus.disconnect();
    },
  };
}
