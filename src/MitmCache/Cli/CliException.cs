namespace MitmCache.Cli;

/// <summary>A failure the CLI reports as "mitmcache: MESSAGE" with exit code 1.</summary>
internal sealed class CliException(string message) : Exception(message);
