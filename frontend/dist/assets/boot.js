// Runs synchronously in <head>: sets the theme attribute before the stylesheet
// paints, so a saved dark preference never flashes white. Only display
// preferences live in localStorage; nothing secret is ever stored there.
(function () {
  try {
    var theme = localStorage.getItem('gpt2api.theme');
    if (theme === 'light' || theme === 'dark') {
      document.documentElement.setAttribute('data-theme', theme);
    }
  } catch (e) {
    /* storage disabled: follow the system preference */
  }
})();
