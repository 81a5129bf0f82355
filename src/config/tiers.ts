/**
 * The objective tiers of a job (critical, important, normal). Their RPO/RTO
 * defaults and the objective checks live in src/policy/objectives.ts; the
 * names are here so config schemas (notifier routes) can use them.
 */
export const TIERS = ['critical', 'important', 'normal'] as const;
export type Tier = (typeof TIERS)[number];
