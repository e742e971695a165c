// Finished while you were away: toasts, the tab title and browser notifications (every page).
