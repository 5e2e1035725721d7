// Account (token) statuses shared by the dashboard and the tokens page.

import { h } from './ui.js';
import { t, fmtRelative, fmtDateTime } from './i18n.js';

export const TOKEN_STATUSES = ['active', 'expiring', 'expired', 'cooling_down', 'refresh_failed', 'needs_relogin', 'disabled'];

/** Statuses that need an operator's attention, most urgent first. */
export const ATTENTION_STATUSES = ['needs_relogin', 'refresh_failed', 'expired', 'cooling_down'];

const BADGE = {
  active: 'badge-success',
  expiring: 'badge-warning',
  expired: 'badge-error',
  cooling_down: 'badge-info',
  refresh_failed: 'badge-error badge-outline',
  needs_relogin: 'badge-error',
  disabled: 'badge-ghost',
};

export function statusLabel(status) {
  return TOKEN_STATUSES.includes(status) ? t(`status.${status}`) : String(status || '—');
}

export function statusBadge(status, size = 'badge-sm') {
  return h('span', { class: `badge ${size} whitespace-nowrap ${BADGE[status] || 'badge-ghost'}`, testid: 'token-status', dataset: { status: String(status || '') } }, statusLabel(status));
}

/** A readable reason for an account's state: its last error, else one derived from its fields. */
export function tokenReason(tok) {
  if (tok.last_error) return tok.last_error;
  switch (tok.status) {
    case 'cooling_down':
      return tok.cooldown_until ? t('reason.coolingUntil', { when: fmtDateTime(tok.cooldown_until), rel: fmtRelative(tok.cooldown_until) }) : t('reason.cooling');
    case 'expired':
      return tok.expired_at ? t('reason.expiredAt', { rel: fmtRelative(tok.expired_at) }) : t('reason.expired');
    case 'needs_relogin':
      return t('reason.relogin');
    case 'refresh_failed':
      return t('reason.refreshFailed');
    default:
      return '';
  }
}

/** Display name of an account: its name, else e-mail, else account id. */
export function tokenTitle(tok) {
  return tok.name || tok.email || tok.account_id || `#${tok.id}`;
}
