using System.Net;
using MitmCache.Configuration;

namespace MitmCache.Tunneling;

internal enum PolicyDecision
{
    Intercept,
    Tunnel,
    Refuse,
}

/// <summary>
/// Decides per CONNECT target: intercept (registries we were told about), tunnel (everything else,
/// never decrypted) or refuse (ports not allowed, link-local and cloud-metadata addresses).
/// </summary>
internal sealed class HostPolicy
{
    private readonly HashSet<string> _exact = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<string> _suffixes = [];
    private readonly IReadOnlySet<int> _allowedPorts;

    public HostPolicy(IEnumerable<string> intercept, IReadOnlySet<int> allowedPorts)
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
    }

    public static HostPolicy From(ProxySettings settings) => new(settings.Intercept, settings.AllowedPorts);

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

    /// <summary>Exact names, or <c>*.suffix</c> patterns that match any deeper name (not the apex).</summary>
    public bool IsIntercepted(string host)
    {
        if (_exact.Contains(host))
        {
            return true;
        }

        foreach (var suffix in _suffixes)
        {
            if (host.Length > suffix.Length && host.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Link-local (169.254.0.0/16, fe80::/10) and the cloud metadata endpoints.</summary>
    public static bool IsDeniedAddress(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            // 169.254.0.0/16 (link-local, cloud metadata) and 0.0.0.0/8 (Linux dials it as this host).
            var bytes = address.GetAddressBytes();
            return (bytes[0] == 169 && bytes[1] == 254) || bytes[0] == 0;
        }

        return address.IsIPv6LinkLocal || address.Equals(s_awsMetadataV6) || address.Equals(IPAddress.IPv6Any);
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
