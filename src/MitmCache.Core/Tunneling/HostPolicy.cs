using System.Net;
using Microsoft.Extensions.Logging;
using MitmCache.Certificates;
using MitmCache.Configuration;
using MitmCache.Diagnostics;

namespace MitmCache.Tunneling;

internal enum PolicyDecision
{
    Intercept,
    Tunnel,
    Refuse,
}

/// <summary>
/// Decides per CONNECT target: intercept (registries we were told about, and that our root may vouch
/// for), tunnel (everything else, never decrypted) or refuse (ports not allowed, link-local and
/// cloud-metadata addresses). Also classifies addresses for the connector: denied to everyone, or
/// internal (loopback, private ranges), which an upstream may not send the proxy to.
/// </summary>
internal sealed class HostPolicy
{
    private readonly HashSet<string> _exact = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _suffixes = [];
    private readonly IReadOnlySet<int> _allowedPorts;
    private readonly Func<string, bool> _canMint;

    /// <param name="canMint">Whether our root may vouch for a host (<c>ca init --permit</c>); a host it may not is tunnelled.</param>
    public HostPolicy(IEnumerable<string> intercept, IReadOnlySet<int> allowedPorts, Func<string, bool>? canMint = null)
    {
        foreach (var pattern in intercept)
        {
            if (pattern.StartsWith("*.", StringComparison.Ordinal))
            {
                _suffixes.Add(pattern[1..]); // ".pkg.dev"
            }
            else
            {
                _exact.Add(pattern);
            }
        }

        _allowedPorts = allowedPorts;
        _canMint = canMint ?? (_ => true);
    }

    public static HostPolicy From(ProxySettings settings) => new(settings.Intercept, settings.AllowedPorts);

    /// <summary>
    /// The policy for a root that may be name-constrained: intercepted names it cannot vouch for are
    /// tunnelled (a leaf for them would fail every client), and each such entry is named at start-up.
    /// </summary>
    public static HostPolicy From(ProxySettings settings, CertificateAuthority authority, ILogger logger)
    {
        if (authority.PermittedDomains is { } permitted)
        {
            foreach (var pattern in settings.Intercept.Where(p => !CertificateAuthority.CoversPattern(permitted, p)))
            {
                logger.InterceptOutsidePermittedNames(pattern, string.Join(", ", permitted));
            }
        }

        return new(settings.Intercept, settings.AllowedPorts, authority.Permits);
    }

    public PolicyDecision Decide(string host, int port, out string reason)
    {
        reason = "";
        if (!_allowedPorts.Contains(port))
        {
            reason = $"port {port} is not allowed (allowed: {string.Join(", ", _allowedPorts.Order())}; add --allow-port)";
            return PolicyDecision.Refuse;
        }

        if (IPAddress.TryParse(host, out var literal) && IsDeniedAddress(literal))
        {
            reason = $"{host} is a link-local or metadata address";
            return PolicyDecision.Refuse;
        }

        return IsIntercepted(host) ? PolicyDecision.Intercept : PolicyDecision.Tunnel;
    }

    /// <summary>
    /// Exact names, or <c>*.suffix</c> patterns that match any deeper name (not the apex), that our root
    /// may vouch for.
    /// </summary>
    public bool IsIntercepted(string host)
    {
        if (_exact.Contains(host))
        {
            return _canMint(host);
        }

        foreach (var suffix in _suffixes)
        {
            if (host.Length > suffix.Length && host.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                return _canMint(host);
            }
        }

        return false;
    }

    /// <summary>
    /// Link-local (169.254.0.0/16, fe80::/10), the cloud metadata endpoints and "this host" (0.0.0.0/8, ::),
    /// also when written as an IPv6 address that embeds them (::ffff:a.b.c.d, 64:ff9b::/96, 2002::/16).
    /// Refused to clients and upstreams alike.
    /// </summary>
    public static bool IsDeniedAddress(IPAddress address)
    {
        address = Unwrap(address);
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            // 169.254.0.0/16 (link-local, cloud metadata) and 0.0.0.0/8 (Linux dials it as this host).
            var bytes = address.GetAddressBytes();
            return (bytes[0] == 169 && bytes[1] == 254) || bytes[0] == 0;
        }

        return address.IsIPv6LinkLocal || address.Equals(s_awsMetadataV6) || address.Equals(IPAddress.IPv6Any);
    }

    /// <summary>
    /// Addresses inside the proxy's own networks: loopback, private (10/8, 172.16/12, 192.168/16), shared
    /// (100.64/10), benchmarking (198.18/15), multicast and reserved IPv4; loopback, unique-local (fc00::/7),
    /// site-local and multicast IPv6; and IPv6 forms that embed any of them. A client may CONNECT there (it
    /// chose to); an upstream's redirect may not send the proxy there unless the operator allows it.
    /// </summary>
    public static bool IsInternalAddress(IPAddress address)
    {
        address = Unwrap(address);
        if (IsDeniedAddress(address))
        {
            return true;
        }

        var b = address.GetAddressBytes();
        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return b[0] is 127 or 10 or >= 224
                || (b[0] == 172 && (b[1] & 0xF0) == 16)
                || (b[0] == 192 && b[1] == 168)
                || (b[0] == 100 && (b[1] & 0xC0) == 64)
                || (b[0] == 198 && (b[1] & 0xFE) == 18)
                || (b[0] == 192 && b[1] == 0 && b[2] == 0);
        }

        return IPAddress.IsLoopback(address) || (b[0] & 0xFE) == 0xFC || address.IsIPv6SiteLocal || address.IsIPv6Multicast;
    }

    /// <summary>The IPv4 address an IPv6 one stands for (mapped, NAT64 64:ff9b::/96, 6to4, IPv4-compatible), else the address itself.</summary>
    private static IPAddress Unwrap(IPAddress address)
    {
        if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return address;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }

        var b = address.GetAddressBytes();
        if (b[0] == 0x20 && b[1] == 0x02)
        {
            return new IPAddress(b.AsSpan(2, 4)); // 6to4: 2002:AABB:CCDD::/48
        }

        var nat64 = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b.AsSpan(4, 8).IndexOfAnyExcept((byte)0) < 0;
        var compatible = b.AsSpan(0, 12).IndexOfAnyExcept((byte)0) < 0 && b.AsSpan(12).IndexOfAnyExcept((byte)0) >= 0 && !IPAddress.IsLoopback(address);
        return nat64 || compatible ? new IPAddress(b.AsSpan(12, 4)) : address;
    }

    private static readonly IPAddress s_awsMetadataV6 = IPAddress.Parse("fd00:ec2::254");

    public static bool IsValidHostName(string host)
    {
        if (host.Length is 0 or > 253 || host.StartsWith('.') || host.StartsWith('-'))
        {
            return false;
        }

        foreach (var label in host.Split('.'))
        {
            if (label.Length is 0 or > 63)
            {
                return false;
            }

            foreach (var c in label)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                {
                    return false;
                }
            }
        }

        return true;
    }

    public static bool IsValidPattern(string pattern) =>
        pattern.StartsWith("*.", StringComparison.Ordinal) ? IsValidHostName(pattern[2..]) : IsValidHostName(pattern);
}
