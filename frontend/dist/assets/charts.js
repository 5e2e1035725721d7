// Chart.js loading and theme-aware colours. Chart.js is a vendored UMD file
// (assets/chart.umd.min.js) loaded only when a page draws a chart.

let loading = null;

export function loadChart() {
  if (window.Chart) return Promise.resolve(window.Chart);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = new URL('chart.umd.min.js', import.meta.url).href;
      s.onload = () => resolve(window.Chart);
      s.onerror = () => {
        loading = null;
        reject(new Error('Chart.js failed to load'));
      };
      document.head.append(s);
    });
  }
  return loading;
}

/**
 * Resolves a CSS colour expression (daisyUI variables, color-mix) to a value
 * the canvas understands, by letting the browser compute it.
 */
export function resolveColor(expr) {
  const probe = document.createElement('span');
  probe.style.color = expr;
  probe.style.display = 'none';
  document.body.append(probe);
  const c = getComputedStyle(probe).color;
  probe.remove();
  return c;
}

export function themeColor(name, alpha = 1) {
  const v = `var(--color-${name})`;
  return resolveColor(alpha >= 1 ? v : `color-mix(in oklab, ${v} ${Math.round(alpha * 100)}%, transparent)`);
}

const SERIES = ['primary', 'secondary', 'accent', 'info', 'success', 'warning', 'error', 'neutral'];

export function palette(n, alpha = 0.85) {
  return Array.from({ length: n }, (_, i) => themeColor(SERIES[i % SERIES.length], alpha));
}

/** Applies fonts and colours of the current theme to Chart.js defaults. */
export function applyChartTheme(Chart) {
  Chart.defaults.color = themeColor('base-content', 0.7);
  Chart.defaults.borderColor = themeColor('base-content', 0.1);
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;
  Chart.defaults.plugins.legend.labels.boxHeight = 12;
  Chart.defaults.plugins.tooltip.backgroundColor = themeColor('neutral', 0.95);
  Chart.defaults.plugins.tooltip.titleColor = themeColor('neutral-content');
  Chart.defaults.plugins.tooltip.bodyColor = themeColor('neutral-content');
  Chart.defaults.maintainAspectRatio = false;
  // No animation for people who asked their system for less motion.
  const reduced = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  Chart.defaults.animation.duration = reduced ? 0 : 300;
}
