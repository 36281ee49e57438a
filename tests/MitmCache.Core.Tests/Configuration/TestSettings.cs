using System.Net;
using MitmCache.Configuration;

namespace MitmCache.Core.Tests.Configuration;

/// <summary>A minimal valid <see cref="ProxySettings"/> for unit tests; callers adjust it with <c>with</c>.</summary>
internal static class TestSettings
{
    public static ProxySettings Create(string dataDirectory = "unused-data-directory", long maxCacheBytes = 20L << 30) => new()
    {
        Listen = new IPEndPoint(IPAddress.Loopback, 3128),
        DataDirectory = dataDirectory,
        Intercept = [],
        AllowedPorts = new HashSet<int> { 443 },
        MaxCacheBytes = maxCacheBytes,
    };
}
