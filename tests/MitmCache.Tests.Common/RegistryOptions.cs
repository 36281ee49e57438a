namespace MitmCache.Tests.Common;

/// <summary>How to configure the upstream <see cref="RegistryServer"/>.</summary>
public sealed record RegistryOptions
{
    /// <summary>When set, the registry requires Bearer tokens from this server (Docker Hub style).</summary>
    public TokenServer? Token { get; init; }

    /// <summary>When set (e.g. <see cref="StaticHttpsServer.BaseUrl"/>), blob GETs are answered with a 307 to this host.</summary>
    public string? RedirectBaseUrl { get; init; }

    /// <summary>The name it answers to (its certificate and <see cref="RegistryServer.Authority"/>); <c>registry.test</c> by default.</summary>
    public string Host { get; init; } = Hosts.Registry;

    /// <summary>When set, the registry runs inside this network namespace, on its address; else on 127.0.0.1.</summary>
    public NetworkNamespace? Network { get; init; }
}
