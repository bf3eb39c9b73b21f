// Validate Strimzi custom resources with the validators that
// @kubernetes-models/strimzi-kafka-operator generates from Strimzi's CRD schemas.
// argv[2]: the directory whose node_modules holds the package (devstack's cache).
// stdin: a JSON array of objects; stdout: a JSON array of error strings ("" = valid).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = join(process.argv[2], "node_modules", "@kubernetes-models", "strimzi-kafka-operator");

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const obj of objects) {
  const [group, version] = obj.apiVersion.split("/");
  try {
    const module = await import(pathToFileURL(join(root, group, version, `${obj.kind}.js`)).href);
    new module[obj.kind](obj).validate();
    results.push("");
  } catch (error) {
    results.push(String(error.message || error));
  }
}
process.stdout.write(JSON.stringify(results));
