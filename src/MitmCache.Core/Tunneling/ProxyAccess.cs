using System.Net;
using System.Security.Cryptography;
using System.Text;
using MitmCache.Configuration;

namespace MitmCache.Tunneling;

/// <summary>Who may use the proxy: a client network allow-list and optional Basic proxy auth.</summary>
internal sealed class ProxyAccess
{
    private readonly IReadOnlyList<IPNetwork> _networks;
    private readonly byte[]? _expectedCredential;

    public ProxyAccess(ProxySettings settings)
    {
        _networks = settings.AllowedClients;
        _expectedCredential = settings.ProxyAuth is null ? null : Encoding.UTF8.GetBytes(settings.ProxyAuth);
    }

    public bool RequiresAuthentication => _expectedCredential is not null;

    /// <summary>Loopback is always allowed; others need to be in an allowed network when one is configured.</summary>
    public bool IsClientAllowed(EndPoint? remote)
    {
        if (remote is not IPEndPoint ip || _networks.Count == 0)
        {
            return true; // validated at start-up: without networks we listen on loopback or require auth
        }

        var address = ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address;
        if (IPAddress.IsLoopback(address))
        {
            return true;
        }

        foreach (var network in _networks)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Checks a <c>Proxy-Authorization</c> value in constant time. The value is never logged.</summary>
    public bool IsAuthorized(string? proxyAuthorization)
    {
        if (_expectedCredential is null)
        {
            return true;
        }

        if (proxyAuthorization is null || !proxyAuthorization.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        Span<byte> decoded = stackalloc byte[512];
        if (!Convert.TryFromBase64String(proxyAuthorization[6..].Trim(), decoded, out var length))
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(decoded[..length], _expectedCredential);
    }
}
