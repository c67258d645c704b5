/**
 * Configured NAT on the command line: `--nat-rules FILE` (iptables-save output) and the rule flags
 * `--snat`, `--masquerade`, `--dnat`, `--redirect`, `--interface-address` (syntax in
 * lib/conntrack/nat/flags.ts), shared by every command that replays captures.
 */
import { readFileSync } from "node:fs";
import type { Argv } from "yargs";
import type { EngineNatOptions } from "../lib/conntrack/engine.js";
import {
  natRulesFromFlags,
  parseNatRules,
  setInterfaceAddress,
  type NatRuleError,
  type NatRuleSet,
} from "../lib/conntrack/nat/index.js";
import { UsageError } from "./errors.js";

export const NAT_VANTAGES = ["inside", "arrival"] as const;
export type NatVantage = (typeof NAT_VANTAGES)[number];

export interface NatArguments {
  "nat-rules"?: string;
  snat?: string[];
  masquerade?: string[];
  dnat?: string[];
  redirect?: string[];
  "interface-address"?: string[];
  "nat-vantage"?: NatVantage;
}

const repeatable = { type: "string", array: true, nargs: 1 } as const;

export function withNatOptions<T>(argv: Argv<T>) {
  return argv
    .option("nat-rules", {
      type: "string",
      describe:
        "act as a NAT device with these rules: `iptables-save -t nat` output (SNAT, DNAT, MASQUERADE, " +
        "REDIRECT); reply tuples become those its kernel records",
    })
    .option("snat", {
      ...repeatable,
      describe: "add a POSTROUTING SNAT rule, [PROTO:]SOURCE[@OUT-IF]=ADDR[-ADDR][:PORT[-PORT]] (repeatable)",
    })
    .option("masquerade", {
      ...repeatable,
      describe:
        "add a POSTROUTING MASQUERADE rule, [PROTO:][SOURCE@]OUT-IF=IF-ADDR[:PORT[-PORT]], e.g. " +
        "out0=198.51.100.32 (repeatable)",
    })
    .option("dnat", {
      ...repeatable,
      describe:
        "add a PREROUTING DNAT rule, [PROTO:]DEST[:PORT[-PORT]][@IN-IF]=[ADDR[-ADDR]][:PORT[-PORT]] (repeatable)",
    })
    .option("redirect", {
      ...repeatable,
      describe: "add a PREROUTING REDIRECT rule, [PROTO:]DEST[:PORT[-PORT]][@IN-IF]=PORT[-PORT] (repeatable)",
    })
    .option("interface-address", {
      ...repeatable,
      describe:
        "an interface's address, IF=ADDR, for MASQUERADE and REDIRECT rules of --nat-rules (repeatable)",
    })
    .option("nat-vantage", {
      choices: NAT_VANTAGES,
      describe:
        "where the capture was taken: inside (default; on the device's inside interface, replies already " +
        "translated back) or arrival (every packet as it reached the device, before translation)",
    });
}

function describeErrors(errors: readonly NatRuleError[]): string {
  return errors.map((error) => `${error.origin}: ${error.message}`).join("\n");
}

/** Appends `extra`'s chains and interface addresses after `base`'s (file rules first, then flags). */
function mergeRuleSets(base: NatRuleSet, extra: NatRuleSet): void {
  for (const [name, chain] of extra.chains) {
    const target = base.chains.get(name);
    if (target === undefined) base.chains.set(name, chain);
    else target.rules.push(...chain.rules);
  }
  for (const [name, addresses] of extra.interfaceAddresses) {
    if (addresses.v4 !== undefined) setInterfaceAddress(base, name, addresses.v4);
    if (addresses.v6 !== undefined) setInterfaceAddress(base, name, addresses.v6);
  }
}

function hasRules(rules: NatRuleSet): boolean {
  for (const chain of rules.chains.values()) if (chain.rules.length > 0) return true;
  return false;
}

/**
 * The engine's NAT options from the NAT arguments; undefined when none is given (no NAT). Every
 * rule that cannot be read is named (FILE:LINE or the flag and its value) in one UsageError.
 */
export function natOptionsFromArguments(
  args: NatArguments,
  readText: (path: string) => string = (path) => readFileSync(path, "utf8"),
): EngineNatOptions | undefined {
  const rulesPath = args["nat-rules"];
  if (Array.isArray(rulesPath)) throw new UsageError("--nat-rules: give one rules file");
  const fromFlags = natRulesFromFlags({
    snat: args.snat,
    masquerade: args.masquerade,
    dnat: args.dnat,
    redirect: args.redirect,
    interfaceAddress: args["interface-address"],
  });
  const errors: NatRuleError[] = [];
  let rules = fromFlags.rules;
  if (rulesPath !== undefined) {
    const parsed = parseNatRules(readText(rulesPath), rulesPath);
    errors.push(...parsed.errors);
    mergeRuleSets(parsed.rules, fromFlags.rules);
    rules = parsed.rules;
  }
  errors.push(...fromFlags.errors);
  if (errors.length > 0) throw new UsageError(describeErrors(errors));
  if (rulesPath === undefined && !hasRules(rules)) {
    if (args["interface-address"] !== undefined && args["interface-address"].length > 0)
      throw new UsageError("--interface-address: no NAT rule uses it (add --nat-rules or a NAT rule flag)");
    if (args["nat-vantage"] !== undefined)
      throw new UsageError("--nat-vantage: no NAT rules (add --nat-rules or a NAT rule flag)");
    return undefined;
  }
  return { rules, vantage: args["nat-vantage"] ?? "inside" };
}
