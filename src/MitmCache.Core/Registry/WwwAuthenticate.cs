using System.Diagnostics.CodeAnalysis;

namespace MitmCache.Registry;

/// <summary>
/// Parses Bearer challenges (RFC 7235 §4.1 challenge syntax) and token-request scopes.
/// </summary>
internal static class WwwAuthenticate
{
    private const string BearerScheme = "Bearer";

    /// <summary>
    /// Finds the Bearer challenge in a <c>WWW-Authenticate</c> value (the scheme is case-insensitive,
    /// other challenges in the same value are skipped) and reads its parameters: names are
    /// case-insensitive, values are quoted strings with backslash escapes or bare tokens.
    /// Returns false when there is no Bearer challenge, the syntax is broken, a parameter repeats,
    /// or <c>realm</c> is missing or not an absolute http(s) URI.
    /// </summary>
    public static bool TryParseBearer(string? header, [NotNullWhen(true)] out BearerChallenge? challenge)
    {
        challenge = null;
        if (header is null)
        {
            return false;
        }

        var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var inChallenge = false;
        var inBearer = false;
        var bearerSeen = false;
        var s = header.AsSpan();
        var p = 0;
        while (true)
        {
            SkipWhitespaceAndCommas(s, ref p);
            if (p == s.Length)
            {
                break;
            }

            var token = ReadToken(s, ref p);
            if (token.Length == 0)
            {
                return false;
            }

            var afterToken = p;
            SkipWhitespace(s, ref p);
            if (inChallenge && p < s.Length && s[p] == '=')
            {
                p++;
                SkipWhitespace(s, ref p);
                if (!TryReadValue(s, ref p, out var value))
                {
                    return false;
                }

                if (inBearer && !parameters.TryAdd(token.ToString(), value))
                {
                    return false;
                }

                SkipWhitespace(s, ref p);
                if (p < s.Length && s[p] != ',')
                {
                    return false;
                }

                continue;
            }

            // A token not followed by '=' starts the next challenge.
            if (bearerSeen)
            {
                break;
            }

            inChallenge = true;
            inBearer = token.Equals(BearerScheme, StringComparison.OrdinalIgnoreCase);
            bearerSeen = inBearer;
            p = afterToken;
        }

        if (!bearerSeen
            || !parameters.TryGetValue("realm", out var realmText)
            || !Uri.TryCreate(realmText, UriKind.Absolute, out var realm)
            || (realm.Scheme != Uri.UriSchemeHttps && realm.Scheme != Uri.UriSchemeHttp))
        {
            return false;
        }

        challenge = new BearerChallenge(
            realm,
            parameters.GetValueOrDefault("service"),
            parameters.GetValueOrDefault("scope"),
            parameters.GetValueOrDefault("error"));
        return true;
    }

    /// <summary>
    /// Parses the <c>scope</c> parameters of a token request. Each parameter may hold several
    /// space-separated scopes. Malformed scopes are skipped; use <see cref="TryParseScope"/> to see them.
    /// </summary>
    public static IReadOnlyList<ScopeEntry> ParseScopes(IEnumerable<string?> scopeParams)
    {
        ArgumentNullException.ThrowIfNull(scopeParams);
        var result = new List<ScopeEntry>();
        foreach (var param in scopeParams)
        {
            if (param is null)
            {
                continue;
            }

            foreach (var scope in param.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (TryParseScope(scope, out var entry))
                {
                    result.Add(entry);
                }
            }
        }

        return result;
    }

    /// <summary>
    /// Parses one scope, <c>type[(class)]:name:action[,action]*</c>. The name is everything between the
    /// first and the last ':' so that <c>host:port/repo</c> names survive. Actions are lower-case letters
    /// or <c>*</c>, de-duplicated in order.
    /// </summary>
    public static bool TryParseScope(ReadOnlySpan<char> scope, [NotNullWhen(true)] out ScopeEntry? entry)
    {
        entry = null;
        var first = scope.IndexOf(':');
        var last = scope.LastIndexOf(':');
        if (first <= 0 || last == first)
        {
            return false;
        }

        var type = scope[..first];
        var name = scope[(first + 1)..last];
        var actionsText = scope[(last + 1)..];
        if (!IsValidResourceType(type) || name.Length == 0 || actionsText.Length == 0)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (c is <= ' ' or >= '\x7f')
            {
                return false;
            }
        }

        var actions = new List<string>();
        foreach (var range in actionsText.Split(','))
        {
            var action = actionsText[range];
            if (!IsValidAction(action))
            {
                return false;
            }

            var text = action.ToString();
            if (!actions.Contains(text))
            {
                actions.Add(text);
            }
        }

        entry = new ScopeEntry(type.ToString(), name.ToString(), actions);
        return true;
    }

    // resourcetype := resourcetypevalue [ '(' resourcetypevalue ')' ], resourcetypevalue := [a-z0-9]+
    private static bool IsValidResourceType(ReadOnlySpan<char> type)
    {
        var open = type.IndexOf('(');
        if (open < 0)
        {
            return IsLowerAlphanumeric(type);
        }

        return type.Length > open + 2
            && type[^1] == ')'
            && IsLowerAlphanumeric(type[..open])
            && IsLowerAlphanumeric(type[(open + 1)..^1]);
    }

    private static bool IsLowerAlphanumeric(ReadOnlySpan<char> s)
    {
        if (s.IsEmpty)
        {
            return false;
        }

        foreach (var c in s)
        {
            if (!char.IsAsciiLetterLower(c) && !char.IsAsciiDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsValidAction(ReadOnlySpan<char> action)
    {
        if (action is "*")
        {
            return true;
        }

        if (action.IsEmpty)
        {
            return false;
        }

        foreach (var c in action)
        {
            if (!char.IsAsciiLetterLower(c))
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryReadValue(ReadOnlySpan<char> s, ref int p, [NotNullWhen(true)] out string? value)
    {
        value = null;
        if (p < s.Length && s[p] == '"')
        {
            return TryReadQuoted(s, ref p, out value);
        }

        // RFC 7235 wants a token here; accept any visible ASCII up to ',' so that unquoted URLs work too.
        var start = p;
        while (p < s.Length && s[p] is > ' ' and < '\x7f' and not ',' and not '"')
        {
            p++;
        }

        if (p == start)
        {
            return false;
        }

        value = s[start..p].ToString();
        return true;
    }

    private static bool TryReadQuoted(ReadOnlySpan<char> s, ref int p, [NotNullWhen(true)] out string? value)
    {
        value = null;
        var builder = new System.Text.StringBuilder();
        p++; // opening quote
        while (p < s.Length)
        {
            var c = s[p++];
            if (c == '"')
            {
                value = builder.ToString();
                return true;
            }

            if (c == '\\')
            {
                if (p == s.Length)
                {
                    return false;
                }

                c = s[p++];
            }

            if ((c < ' ' && c != '\t') || c == '\x7f')
            {
                return false;
            }

            builder.Append(c);
        }

        return false; // unterminated
    }

    private static ReadOnlySpan<char> ReadToken(ReadOnlySpan<char> s, ref int p)
    {
        var start = p;
        while (p < s.Length && IsTokenChar(s[p]))
        {
            p++;
        }

        return s[start..p];
    }

    // tchar from RFC 9110 §5.6.2
    private static bool IsTokenChar(char c)
    {
        return char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*'
            or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~';
    }

    private static void SkipWhitespace(ReadOnlySpan<char> s, ref int p)
    {
        while (p < s.Length && s[p] is ' ' or '\t')
        {
            p++;
        }
    }

    private static void SkipWhitespaceAndCommas(ReadOnlySpan<char> s, ref int p)
    {
        while (p < s.Length && s[p] is ' ' or '\t' or ',')
        {
            p++;
        }
    }
}
