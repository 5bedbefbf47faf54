import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';
import { tauriBackend } from './lib/tauri-backend';

// The on-screen keyboard: WebKit neither honours `interactive-widget` nor shrinks `dvh` for it,
// but the visual viewport does shrink. The layout takes its height (see `.layout`), so the
// composer stays above the keyboard; times its scale, so that a pinch-zoom does not shrink it.
const viewport = window.visualViewport;
if (viewport) {
  const fit = () => document.documentElement.style.setProperty('--viewport-height', `${viewport.height * viewport.scale}px`);
  viewport.addEventListener('resize', fit);
  fit();
}

const target = document.getElementById('app');
if (target) mount(App, { target, props: { backend: tauriBackend } });
