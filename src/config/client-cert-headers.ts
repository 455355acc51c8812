// A default of the config shared with the data path, in a module of its
// own: the workers read it, and importing it from normalise.ts loaded the
// YAML parser, the schema and fastest-levenshtein into every worker.

/** Where a verified client certificate goes upstream (auth.mtls); stripped from every request when a listener asks for client certificates. */
export const CLIENT_CERT_HEADERS = { subject: 'X-Client-Cert-Subject', san: 'X-Client-Cert-San' } as const;
