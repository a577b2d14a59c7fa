import { UsageError } from "./errors.ts";
import { didYouMean } from "../suggest.ts";

/*
 * The command-line parser of every subcommand: the part of node:util's parseArgs that garret
 * uses, with the same grammar. node:util itself took about 1 ms to load, a fifth of a client
 * command's start-up before its first request.
 *
 * Grammar (as Node's, strict mode): `--name value`, `--name=value`, `-n value`, `-nvalue`, grouped
 * short booleans (`-ab`); `--` ends the options; a lone `-` is a positional. Unknown options, a
 * missing or dash-looking value (pass it as `--name=-x`), a value given to a boolean and positionals
 * where none are allowed are usage errors. With `strict: false` (a command picking out the few
 * options it shares with another), unknown options and their stray values are skipped instead.
 */

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
}

type ValueOf<S extends OptionSpec> = S["type"] extends "boolean"
  ? (S["multiple"] extends true ? boolean[] : boolean)
  : (S["multiple"] extends true ? string[] : string);

export type ParsedValues<O extends Record<string, OptionSpec>> = { [K in keyof O]?: ValueOf<O[K]> };

export interface ParseConfig<O extends Record<string, OptionSpec>> {
  args: string[];
  options: O;
  allowPositionals?: boolean;
  /** Default true. */
  strict?: boolean;
}

/** An option as given, in command-line order (like node:util's option tokens). */
export interface OptionToken {
  name: string;
  value: string | boolean;
}

export function parseArgs<O extends Record<string, OptionSpec>>(
  config: ParseConfig<O>,
): { values: ParsedValues<O>; positionals: string[]; options: OptionToken[] } {
  const { args, options } = config;
  // For test/appliance/help.test.ts: the flags this command's parser takes, to hold against its help.
  if (process.env.GARRET_LIST_FLAGS === "1") {
    process.stdout.write(`${JSON.stringify(Object.keys(options))}\n`);
    process.exit(0);
  }
  const strict = config.strict ?? true;
  const values: Record<string, string | boolean | (string | boolean)[]> = Object.create(null);
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(options)) if (spec.short) byShort.set(spec.short, name);

  const given: OptionToken[] = [];
  const set = (name: string, value: string | boolean): void => {
    given.push({ name, value });
    if (!options[name]!.multiple) {
      values[name] = value;
      return;
    }
    const list = (values[name] as (string | boolean)[] | undefined) ?? [];
    list.push(value);
    values[name] = list;
  };
  const label = (name: string): string => {
    const short = options[name]!.short;
    return short ? `-${short}, --${name}` : `--${name}`;
  };
  /** The value of string option `name`: inline, or the next argument. Returns how many arguments it used. */
  const takeValue = (name: string, inline: string | undefined, next: string | undefined, spelled: string): number => {
    if (inline !== undefined) {
      set(name, inline);
      return 0;
    }
    if (next === undefined) {
      if (!strict) return 0;
      throw new UsageError(`Option '${label(name)} <value>' argument missing`);
    }
    if (strict && next.startsWith("-") && next !== "-") {
      throw new UsageError(`Option '${spelled}' argument is ambiguous; to give a value starting with a dash, use '--${name}=${next}'`);
    }
    set(name, next);
    return 1;
  };
  const positional = (arg: string): void => {
    if (strict && !config.allowPositionals) throw new UsageError(`Unexpected argument '${arg}'. This command does not take positional arguments`);
    positionals.push(arg);
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      for (const rest of args.slice(i + 1)) positional(rest);
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const inline = eq < 0 ? undefined : arg.slice(eq + 1);
      const spec = Object.hasOwn(options, name) ? options[name] : undefined;
      if (!spec) {
        if (strict) throw new UsageError(`Unknown option '--${name}'${didYouMean(name, Object.keys(options), (n) => `'--${n}'`)}`);
        continue;
      }
      if (spec.type === "boolean") {
        if (inline !== undefined && strict) throw new UsageError(`Option '--${name}' does not take an argument`);
        set(name, true);
      } else {
        i += takeValue(name, inline, args[i + 1], `--${name}`);
      }
      continue;
    }
    if (arg.startsWith("-") && arg !== "-") {
      // A group of short options: booleans, possibly ending in a string option that takes the rest.
      for (let j = 1; j < arg.length; j++) {
        const name = byShort.get(arg[j]!);
        if (!name) {
          if (strict) throw new UsageError(`Unknown option '-${arg[j]}'`);
          continue;
        }
        if (options[name]!.type === "boolean") {
          set(name, true);
          continue;
        }
        const rest = arg.slice(j + 1);
        i += takeValue(name, rest === "" ? undefined : rest, args[i + 1], `-${arg[j]}`);
        break;
      }
      continue;
    }
    positional(arg);
  }
  return { values: values as ParsedValues<O>, positionals, options: given };
}
