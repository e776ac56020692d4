#!/usr/bin/env node
// dynalite's own CLI (same flags), except that a client hanging up mid-request
// does not bring the server down.
//
// Why: dynalite rethrows a request's 'error' event (index.js:
// `req.on('error', function (err) { throw err })`), so a client killed while
// sending a request body -- a worker SIGKILLed mid-BatchWriteItem, which is
// exactly what the resume tests and a dying Airflow task do -- crashes the whole
// local DynamoDB. AWS drops such a request and carries on; so do we.
'use strict'

process.on('uncaughtException', function (err) {
  if (err && (err.code === 'ECONNRESET' || err.message === 'aborted')) {
    console.error('dynalite: a client hung up mid-request (' + err.message + '); the request was dropped')
    return
  }
  console.error(err)
  process.exit(1)
})

require('dynalite/cli.js')
