/** Configured NAT: rules (iptables-save or flags) and the kernel's choice of translation. */
export * from "./rules.js";
export {
  parseNatRules,
  natRulesFamilyOf,
  splitRuleWords,
  type ParsedNatRules,
  type ParseNatRulesOptions,
} from "./iptables.js";
export { natRulesFromFlags, type NatFlags, type FlagNatRules } from "./flags.js";
export {
  findNatRule,
  followMasterDecision,
  invertTuple,
  jhash2,
  natDecision,
  type NatContext,
  type NatDecision,
  type NatPath,
  type NatTableView,
  type NatTranslation,
} from "./decision.js";
export { SeqAdjust } from "./seqadj.js";
