// The page's light or dark theme. This script is loaded in <head> without defer, so that the theme is set
// before the page is first drawn (no flash of the wrong colours): the root's data-theme is the choice
// made with the sidebar's switch (kept in this browser's localStorage), else the system's, followed live.
// data-theme-choice says which of system, light and dark is chosen, for the switch's label.
(function () {
  "use strict";

  const key = "smolchat-theme";
  const choices = ["system", "light", "dark"];
  const root = document.documentElement;
  const systemDark = window.matchMedia("(prefers-color-scheme: dark)");

  function chosen() {
    try {
      const c = localStorage.getItem(key);
      return choices.includes(c) ? c : "system";
    } catch (e) {
      return "system"; // storage refused (a privacy mode): follow the system
    }
  }

  function apply() {
    const c = chosen();
    root.dataset.themeChoice = c;
    root.dataset.theme = c === "system" ? (systemDark.matches ? "dark" : "light") : c;
    const button = document.getElementById("theme-switch");
    if (button) button.textContent = "Theme: " + c[0].toUpperCase() + c.slice(1);
  }

  apply();
  systemDark.addEventListener("change", apply);
  document.addEventListener("DOMContentLoaded", apply);
  // The switch cycles system → light → dark.
  document.addEventListener("click", (e) => {
    if (!e.target.closest || !e.target.closest("#theme-switch")) return;
    const next = choices[(choices.indexOf(chosen()) + 1) % choices.length];
    try {
      if (next === "system") localStorage.removeItem(key);
      else localStorage.setItem(key, next);
    } catch (err) {
      root.dataset.themeChoice = next; // not kept, but shown for this page
    }
    apply();
  });
})();
