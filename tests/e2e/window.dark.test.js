// The chat window's suite again in the dark theme (GTK's dark variant, which the page sees as
// prefers-color-scheme: dark): every state it keeps as a screenshot, in dark.
process.env.CAUSERIE_E2E_THEME = 'dark';
await import('./window.test.js');
