/** One line of the result table. */
export interface Row {
  /** Name of the measurement, with its unit. */
  measurement: string;
  /** The figure of keyfile-auth. */
  value: string;
  /** Name of the baseline and its figure. */
  baseline: string;
  /** keyfile-auth's figure relative to the baseline's, or "" for none. */
  ratio: string;
  /** The target, or "" when the row only reports. */
  target: string;
  /** Whether the target is met, or `undefined` when the row only reports. */
  met: boolean | undefined;
}

const HEADINGS = [
  "Measurement",
  "keyfile-auth",
  "Baseline",
  "Ratio",
  "Target",
  "Result",
];

/** Formats the rows as a Markdown table with padded columns. */
export function formatTable(rows: readonly Row[]): string {
  const cells = rows.map((row) => [
    row.measurement,
    row.value,
    row.baseline,
    row.ratio,
    row.target,
    describeResult(row.met),
  ]);
  const widths = HEADINGS.map((heading, column) =>
    Math.max(heading.length, ...cells.map((line) => line[column]!.length)),
  );

  const format = (line: readonly string[]): string =>
    `| ${line.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
  const separator = `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`;
  return [format(HEADINGS), separator, ...cells.map(format)].join("\n");
}

function describeResult(met: boolean | undefined): string {
  if (met === undefined) {
    return "";
  }
  return met ? "met" : "not met";
}

/** Formats operations per second with a thousands separator. */
export function formatOps(opsPerSecond: number): string {
  return `${Math.round(opsPerSecond).toLocaleString("en-US")} ops/s`;
}

/** Formats a ratio such as `2.31x`. */
export function formatRatio(ratio: number): string {
  return `${ratio.toFixed(2)}x`;
}

/** Formats milliseconds with one decimal. */
export function formatMs(milliseconds: number): string {
  return `${milliseconds.toFixed(1)} ms`;
}
