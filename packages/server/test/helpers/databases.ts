export * from "../../src/testing/databases.js";
