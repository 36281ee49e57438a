namespace MitmCache.Tests.Common;

/// <summary>
/// Host names the fixtures answer to. Go clients bypass HTTPS_PROXY for loopback
/// addresses, so every fixture is named and resolved to 127.0.0.1 by whoever connects.
/// </summary>
public static class Hosts
{
    public const string Registry = "registry.test";
    public const string Auth = "auth.test";
    public const string Cdn = "cdn.test";
}
