using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace MitmCache.Certificates;

/// <summary>
/// A host name or IP literal, validated and normalised for a leaf certificate. Two spellings of
/// one host (<c>Example.COM</c> and <c>example.com</c>, <c>[::1]</c> and <c>0::1</c>) normalise
/// to the same <see cref="Name"/>, so they share one cached leaf.
/// </summary>
/// <param name="Name">Lower-case ASCII DNS name, or the canonical text of <paramref name="Address"/>.</param>
/// <param name="Address">The address when the host is an IP literal; otherwise null.</param>
internal sealed record CertificateHost(string Name, IPAddress? Address)
{
    /// <summary>Longest DNS name in text form (RFC 1035 section 2.3.4, without the trailing dot).</summary>
    public const int MaxLength = 253;

    private const int MaxLabelLength = 63;

    /// <summary>
    /// Parses a host as it arrives in SNI, CONNECT or Host: lower-cases it, strips the brackets
    /// of an IPv6 literal, and rejects anything that is not plain ASCII DNS labels of
    /// <c>[a-z0-9-_]</c> (with <c>*</c> only as the whole leftmost label) or an IP literal.
    /// </summary>
    /// <exception cref="ArgumentException">The host is not acceptable.</exception>
    public static CertificateHost Parse(string host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return TryParse(host, allowWildcard: true, out var result, out var error)
            ? result
            : throw new ArgumentException($"Invalid host '{Printable(host)}': {error}.", nameof(host));
    }

    /// <summary>Parses without throwing; <paramref name="error"/> says why a host was refused.</summary>
    public static bool TryParse(
        string host,
        bool allowWildcard,
        [NotNullWhen(true)] out CertificateHost? result,
        [NotNullWhen(false)] out string? error)
    {
        result = null;
        var text = host;
        if (text.Length == 0)
        {
            error = "it is empty";
            return false;
        }

        if (text[0] == '[' || text[^1] == ']')
        {
            if (text.Length < 3 || text[0] != '[' || text[^1] != ']')
            {
                error = "unbalanced brackets";
                return false;
            }

            text = text[1..^1];
            if (!text.Contains(':'))
            {
                error = "brackets may only enclose an IPv6 address";
                return false;
            }
        }

        if (text.Contains(':'))
        {
            // ScopeId != 0 means a zone ("fe80::1%eth0"): it has no meaning to a remote client.
            if (!IPAddress.TryParse(text, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6 || v6.ScopeId != 0)
            {
                error = "it is not a valid IPv6 address (zone IDs are not allowed)";
                return false;
            }

            result = new CertificateHost(v6.ToString(), v6);
            error = null;
            return true;
        }

        // IPAddress.TryParse also accepts inet_aton forms such as "1" or "0x7f.1"; only the
        // canonical dotted quad is an IP literal, anything else is judged as a DNS name.
        if (IPAddress.TryParse(text, out var v4) && v4.AddressFamily == AddressFamily.InterNetwork && v4.ToString() == text)
        {
            result = new CertificateHost(text, v4);
            error = null;
            return true;
        }

        if (!TryValidateDnsName(text, allowWildcard, out error))
        {
            return false;
        }

        result = new CertificateHost(text.ToLowerInvariant(), null);
        return true;
    }

    private static bool TryValidateDnsName(string name, bool allowWildcard, [NotNullWhen(false)] out string? error)
    {
        if (!System.Text.Ascii.IsValid(name))
        {
            error = "it contains non-ASCII characters; convert internationalised names to punycode (xn--...) first";
            return false;
        }

        if (name.Length > MaxLength)
        {
            error = $"it is longer than {MaxLength} characters";
            return false;
        }

        var labels = name.Split('.');
        for (var i = 0; i < labels.Length; i++)
        {
            var label = labels[i];
            if (label.Length == 0)
            {
                error = "it has an empty label";
                return false;
            }

            if (label.Length > MaxLabelLength)
            {
                error = $"it has a label longer than {MaxLabelLength} characters";
                return false;
            }

            if (label == "*")
            {
                if (!allowWildcard || i != 0 || labels.Length < 2)
                {
                    error = allowWildcard ? "'*' is only allowed as the whole leftmost label of a longer name" : "wildcards are not allowed here";
                    return false;
                }

                continue;
            }

            foreach (var c in label)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                {
                    error = c == '*'
                        ? "'*' is only allowed as the whole leftmost label of a longer name"
                        : $"it contains '{Printable(c.ToString())}'; only letters, digits, '-' and '_' are allowed in a label";
                    return false;
                }
            }
        }

        error = null;
        return true;
    }

    /// <summary>Keeps control characters out of error messages (and so out of logs).</summary>
    private static string Printable(string text)
    {
        var shown = text.Length > 80 ? string.Concat(text.AsSpan(0, 80), "...") : text;
        return string.Create(shown.Length, shown, static (span, s) =>
        {
            for (var i = 0; i < s.Length; i++)
            {
                span[i] = char.IsControl(s[i]) ? '?' : s[i];
            }
        });
    }
}
