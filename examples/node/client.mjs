// Calling a qpumesh QPU node and coordinator from Node.js, with nothing from Python:
// @grpc/grpc-js + @grpc/proto-loader read protos/qpumesh/v1/*.proto at run time.
//
//   npm ci --prefix examples/node
//   node examples/node/client.mjs --node HOST:PORT --coordinator HOST:PORT
//
// Prints one JSON object with what it got back (tests/integration/test_node_js_client.py
// checks it). What it shows, in order (docs/client.md, "Calling from other languages"):
//   1. a circuit written as Cirq JSON by hand, named by the SHA-256 of the exact text sent;
//   2. Pauli strings in Cirq's qubit order (NamedQubit "q2" sorts before "q10");
//   3. float64 tensors: shape + little-endian bytes;
//   4. the circuit sent once, then by hash only; NOT_FOUND means "send the JSON again";
//   5. errors: a status code and a message naming the field;
//   6. a job submitted with only the fields it changes (proto3 optional: the rest default),
//      followed to the end, its results and a prediction.
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTOS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "protos");
const definition = protoLoader.loadSync(["qpumesh/v1/qpu_node.proto", "qpumesh/v1/coordinator.proto"], {
  includeDirs: [PROTOS],
  keepCase: true, // field names as in the .proto: cirq_json, shift_rule_executions
  longs: String, // uint64 (seed, shift_rule_executions) as strings: no precision lost
  enums: String,
  defaults: true,
  oneofs: true, // JobEvent.kind tells which of epoch/state/log/fault is set
});
const v1 = grpc.loadPackageDefinition(definition).qpumesh.v1;

// Replies can exceed gRPC's default 4 MiB receive limit (a Jacobian of a large batch,
// GetResults of a long series): lift it. The servers enforce their own limits.
const CHANNEL_OPTIONS = { "grpc.max_receive_message_length": -1, "grpc.max_send_message_length": -1 };
const DEADLINE_MS = 30_000;

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + DEADLINE_MS }, (error, reply) =>
      error ? reject(error) : resolve(reply),
    );
  });
}

// Tensor: shape + little-endian float64 bytes, row-major.
function tensor(rows) {
  const shape = [rows.length, rows[0].length];
  const view = new DataView(new ArrayBuffer(8 * shape[0] * shape[1]));
  rows.flat().forEach((value, i) => view.setFloat64(8 * i, value, true));
  return { shape, data: Buffer.from(view.buffer) };
}
function fromTensor(message) {
  const data = message.data;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const values = Array.from({ length: data.byteLength / 8 }, (_, i) => view.getFloat64(8 * i, true));
  const columns = message.shape.length > 1 ? message.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  return Array.from({ length: message.shape[0] }, (_, r) => values.slice(r * columns, (r + 1) * columns));
}

// Cirq's qubit order (sorted(circuit.all_qubits())): by type name first (GridQubit,
// LineQubit, NamedQubit), then LineQubit by x, NamedQubit by name with digit runs compared
// as numbers ("q2" < "q10"; a plain string sort would put "q10" first).
function naturalKey(name) {
  return name.split(/(\d+)/).map((part, i) => (i % 2 ? part.padStart(20, "0") : part)).join("");
}
function cirqOrder(qubits) {
  const key = (q) => `${q.cirq_type}\u0000${q.cirq_type === "LineQubit" ? String(q.x).padStart(20, "0") : naturalKey(q.name)}`;
  return [...qubits].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

// Ry(theta) on NamedQubit "q10", X on NamedQubit "q2": <Z_q10> = cos(theta), <Z_q2> = -1.
const q10 = { cirq_type: "NamedQubit", name: "q10" };
const q2 = { cirq_type: "NamedQubit", name: "q2" };
const circuitObject = {
  cirq_type: "Circuit",
  moments: [
    {
      cirq_type: "Moment",
      operations: [
        { cirq_type: "GateOperation", gate: { cirq_type: "Ry", rads: { cirq_type: "sympy.Symbol", name: "theta" } }, qubits: [q10] },
        { cirq_type: "GateOperation", gate: { cirq_type: "XPowGate", exponent: 1.0, global_shift: 0.0 }, qubits: [q2] },
      ],
    },
  ],
};
const cirqJson = JSON.stringify(circuitObject);
// The hash names these exact bytes: hash what you send, never a re-serialised copy.
const circuitHash = createHash("sha256").update(cirqJson, "utf8").digest("hex");

function pauli(letters) {
  // letters: {qubit name: "X"|"Y"|"Z"}; the string has one letter per qubit in Cirq's order.
  return cirqOrder([q10, q2]).map((q) => letters[q.name] ?? "I").join("");
}

async function node(address) {
  const client = new v1.QPUNode(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  const info = await call(client, "GetInfo", {});
  const thetas = [0, Math.PI / 3, Math.PI / 2, Math.PI];
  const observables = [
    { terms: [{ coefficient: 1.0, paulis: pauli({ q10: "Z" }) }] },
    { terms: [{ coefficient: 1.0, paulis: pauli({ q2: "Z" }) }] },
  ];
  const params = { symbols: ["theta"], values: tensor(thetas.map((t) => [t])) };
  // First call: the circuit in full. The node caches it under its hash.
  const first = await call(client, "Evaluate", { circuit: { hash: circuitHash, cirq_json: cirqJson }, observables, params });
  // Later calls may send the hash alone; NOT_FOUND (a restarted node) means: send cirq_json again.
  let byHash;
  try {
    byHash = await call(client, "Evaluate", { circuit: { hash: circuitHash }, observables, params });
  } catch (error) {
    if (error.code !== grpc.status.NOT_FOUND) throw error;
    byHash = await call(client, "Evaluate", { circuit: { hash: circuitHash, cirq_json: cirqJson }, observables, params });
  }
  const gradient = await call(client, "ShiftGradient", {
    circuit: { hash: circuitHash },
    observables,
    params,
    include_values: true,
    method: "GRADIENT_METHOD_PARAMETER_SHIFT",
  });
  let refused = null;
  try {
    await call(client, "Evaluate", {}); // an empty request
  } catch (error) {
    refused = { code: grpc.status[error.code], details: error.details };
  }
  client.close();
  return {
    node_id: info.node_id,
    max_qubits: info.max_qubits,
    qubit_order: cirqOrder([q10, q2]).map((q) => q.name),
    paulis: observables.map((o) => o.terms[0].paulis),
    thetas,
    expectations: fromTensor(first.expectations),
    expectations_by_hash: fromTensor(byHash.expectations),
    jacobian: fromTensor(gradient.jacobian), // [rows][observables x wrt]
    shift_rule_executions: gradient.shift_rule_executions,
    gradient_method: gradient.method,
    empty_request: refused,
  };
}

async function coordinator(address) {
  const client = new v1.Coordinator(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  // Only the fields to change; unset (proto3 optional) fields take the JobSpec defaults.
  const spec = { task: "pendulum", model: "distributed", qubits: 4, partitions: 2, epochs: 2, series_length: 24 };
  const { job_id } = await call(client, "SubmitJob", { spec });
  const events = await new Promise((resolve, reject) => {
    const seen = [];
    const stream = client.WatchJob({ job_id, after_seq: 0 });
    stream.on("data", (event) => seen.push(event.kind === "state" ? `state ${event.state}` : event.kind));
    stream.on("end", () => resolve(seen));
    stream.on("error", reject);
  });
  const results = await call(client, "GetResults", { job_id });
  const series = [0.1, 0.4, 0.35, 0.2, 0.05, -0.1];
  const prediction = await call(client, "Predict", { job_id, series });
  let refused = null;
  try {
    await call(client, "Predict", { job_id, series: [0.1, NaN, 0.2, 0.3, 0.4] });
  } catch (error) {
    refused = { code: grpc.status[error.code], details: error.details };
  }
  client.close();
  const job = results.job;
  return {
    job_id,
    state: job.state,
    epochs_done: job.epochs_done,
    spec: { layers: job.spec.layers, ansatz: job.spec.ansatz, window: job.spec.window, lr: job.spec.lr },
    history: job.history.map((m) => ({ epoch: m.epoch, train_loss: m.train_loss, test_r2: m.test_r2 })),
    events,
    targets: results.targets.length,
    predictions: results.predictions.length,
    train_size: results.train_size,
    series,
    prediction: prediction.predictions,
    prediction_epoch: prediction.epoch,
    nan_series: refused,
  };
}

const { values: args } = parseArgs({ options: { node: { type: "string" }, coordinator: { type: "string" } } });
const out = {};
if (args.node) out.node = await node(args.node);
if (args.coordinator) out.coordinator = await coordinator(args.coordinator);
console.log(JSON.stringify(out));
