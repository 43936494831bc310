// Imported first by run.ts: the AWS SDK warns about Node 20 when it loads, which would interleave with the
// benchmark's output. The project pins the SDK version, so the warning adds nothing here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
