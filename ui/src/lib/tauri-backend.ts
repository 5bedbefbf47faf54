import { Channel, invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { getCurrentWindow } from '@tauri-apps/api/window';
import { openUrl } from '@tauri-apps/plugin-opener';
import type { Backend } from './backend';
import type { AlertLevel, AppNotice, Applied, ChatInfo, ClientEvent, LocalId, Settings } from './types';

/** The backend inside the Tauri app: each method is one command of src-tauri/src/commands.rs. */
export const tauriBackend: Backend = {
  start(onEvent) {
    const events = new Channel<ClientEvent>();
    events.onmessage = onEvent;
    return invoke<ChatInfo>('start_chat', { events });
  },
  send: (room, text, mentions) => invoke<LocalId>('send_message', { room, text, mentions }),
  reply: (room, target, text, mentions) => invoke<LocalId>('reply_message', { room, target, text, mentions }),
  around: (room, seq) => invoke('load_around', { room, seq }),
  search: (query, after) => invoke('search_messages', { query, after }),
  openDirect: (user) => invoke('open_direct', { user }),
  react: (room, target, emoji) => invoke<LocalId>('react_message', { room, target, emoji }),
  edit: (room, target, text) => invoke<LocalId>('edit_message', { room, target, text }),
  remove: (room, target) => invoke<LocalId>('delete_message', { room, target }),
  history: (room, before) => invoke('load_history', { room, before }),
  join: (room) => invoke('join_room', { room }),
  leave: (room) => invoke('leave_room', { room }),
  typing: (room, typing) => invoke('set_typing', { room, typing }),
  markRead: (room, seq) => invoke('mark_read', { room, seq }),
  setTitle: (title) => getCurrentWindow().setTitle(title),
  findRooms: (prefix, after) => invoke('find_rooms', { prefix, after }),
  loadMoreOnline: (room) => invoke('load_more_online', { room }),
  drafts: () => invoke<Record<string, string>>('get_drafts'),
  saveDrafts: (drafts) => invoke('save_drafts', { drafts }),
  settings: () => invoke<Settings>('get_settings'),
  applySettings: (settings) => invoke<Applied>('apply_settings', { settings }),
  checkConnection: () => invoke('check_connection'),
  notices: () => invoke<AppNotice[]>('take_notices'),
  openUrl: (url) => openUrl(url),
  notify: (room, title, body) => invoke('notify', { room, title, body }),
  withdrawNotification: (room) => invoke('withdraw_notification', { room }),
  askNotifications: () => invoke<boolean>('ask_notifications'),
  // The app's event (src-tauri/src/notifications.rs `OPENED`), to this window.
  onNotificationOpened: (open) => listen<string>('notification-opened', (event) => open(event.payload)),
  alerts: () => invoke<Record<string, AlertLevel>>('get_alerts'),
  setAlert: (room, level) => invoke('set_alert', { room, level }),
};
