// The system pages: replication links, schemas, and the services with
// their flow map. Each lives in its own module; this one loads them.
import "./system-links.js";
import "./system-schemas.js";
import "./system-services.js";
