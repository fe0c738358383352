// `npm run flow`: runs the flow against TOKENHUB_URL (default http://127.0.0.1:8080) with
// MASTER_API_KEY, and prints what it saw.
import { flow } from "./flow.js";

const baseUrl = process.env.TOKENHUB_URL ?? "http://127.0.0.1:8080";
const master = process.env.MASTER_API_KEY;
if (!master) {
  console.error("set MASTER_API_KEY");
  process.exit(2);
}
flow(baseUrl, master).then(
  (result) => console.log(JSON.stringify(result)),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
