using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Configuration;

/// <summary>
/// The kinds of value an option takes, each with its parser and its "expected ..." wording, so that
/// <see cref="ProxyOptions"/> reads as a table: <c>Option.Size("max-cache-size", "20GiB", ...)</c>.
/// </summary>
public static class Option
{
    public static Option<IPEndPoint> Endpoint(string name, string defaultText, string help, Func<ProxySettings, IPEndPoint, ProxySettings> store) =>
        new(name, OptionArity.Single, "ADDRESS:PORT", defaultText, help, ParseEndpoint, store, null!);

    /// <summary>An address that is off unless given; an empty value turns it off again.</summary>
    public static Option<IPEndPoint?> OptionalEndpoint(string name, string help, Func<ProxySettings, IPEndPoint?, ProxySettings> store) =>
        new(name, OptionArity.Single, "ADDRESS:PORT", null, help,
            (string text, out IPEndPoint? value, out string expected) =>
            {
                var parsed = ParseEndpoint(text, out var endpoint, out expected) || text.Length == 0;
                value = text.Length == 0 ? null : endpoint;
                return parsed;
            }, store, null) { DocumentedDefault = "none" };

    public static Option<long> Size(string name, string defaultText, long minimum, string minimumText, string help, Func<ProxySettings, long, ProxySettings> store) =>
        new(name, OptionArity.Single, "SIZE", defaultText, help, (string text, out long value, out string expected) =>
        {
            expected = $"a size of at least {minimumText} such as 50GiB";
            return ValueParsers.TryParseSize(text, out value) && value >= minimum;
        }, store, 0);

    public static Option<TimeSpan> Duration(string name, string defaultText, bool positive, string help, Func<ProxySettings, TimeSpan, ProxySettings> store, string? note = null) =>
        new(name, OptionArity.Single, "DURATION", defaultText, help, (string text, out TimeSpan value, out string expected) =>
        {
            expected = $"a {(positive ? "positive " : "")}duration such as {defaultText}{note}";
            return ValueParsers.TryParseDuration(text, out value) && (!positive || value > TimeSpan.Zero);
        }, store, TimeSpan.Zero);

    public static Option<int> Count(string name, string defaultText, string help, Func<ProxySettings, int, ProxySettings> store) =>
        new(name, OptionArity.Single, "N", defaultText, help, (string text, out int value, out string expected) =>
        {
            expected = $"a whole number of at least 1 such as {defaultText}";
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value >= 1;
        }, store, 0);

    /// <summary>One of a few words, case-insensitive. A later pair with the same value is an alias, accepted but not documented.</summary>
    public static Option<T> Choice<T>(string name, string defaultText, string help, Func<ProxySettings, T, ProxySettings> store, params (string Word, T Value)[] choices)
    {
        var documented = choices.DistinctBy(c => c.Value).Select(c => c.Word).ToList();
        var list = documented.Count == 1 ? documented[0] : string.Join(", ", documented.SkipLast(1)) + " or " + documented[^1];
        return new(name, OptionArity.Single, string.Join('|', documented), defaultText, help, (string text, out T value, out string expected) =>
        {
            expected = list;
            var index = Array.FindIndex(choices, c => c.Word.Equals(text.Trim(), StringComparison.OrdinalIgnoreCase));
            value = index < 0 ? default! : choices[index].Value;
            return index >= 0;
        }, store, default!);
    }

    public static Option<bool> Switch(string name, string help, Func<ProxySettings, bool, ProxySettings> store) =>
        new(name, OptionArity.Switch, "", "false", help, ParseBoolean, store, false);

    /// <summary>Free text checked by <paramref name="parse"/>; off unless given.</summary>
    public static Option<T?> Text<T>(string name, string valueName, string help, OptionParser<T?> parse, Func<ProxySettings, T?, ProxySettings> store,
        bool secret = false, string documentedDefault = "none", bool inConfigFile = true) =>
        new(name, OptionArity.Single, valueName, null, help, parse, store, default)
        {
            Secret = secret, DocumentedDefault = documentedDefault, InConfigFile = inConfigFile,
        };

    public static ListOption<T> List<T>(string name, string valueName, string help, OptionParser<T> parse, Func<ProxySettings, IReadOnlyList<T>, ProxySettings> store,
        string documentedDefault = "none", bool secret = false) =>
        new(name, valueName, help, parse, store) { DocumentedDefault = documentedDefault, Secret = secret };

    public static bool ParseEndpoint(string text, out IPEndPoint value, out string expected)
    {
        expected = "ADDRESS:PORT such as 127.0.0.1:3128 or [::1]:3128";
        return ValueParsers.TryParseEndpoint(text, out value);
    }

    /// <summary>true/false, and 1/0, yes/no, on/off as systemd environment files write them.</summary>
    public static bool ParseBoolean(string text, out bool value, out string expected)
    {
        expected = "true or false";
        value = text.Trim().ToLowerInvariant() is "true" or "1" or "yes" or "on";
        return text.Trim().ToLowerInvariant() is "true" or "false" or "1" or "0" or "yes" or "no" or "on" or "off";
    }

    /// <summary>A PEM file with at least one certificate (not a directory, not a key, not empty); kept as its full path.</summary>
    public static bool ParsePemBundle(string text, out string? value, out string expected)
    {
        value = Path.GetFullPath(text);
        expected = "a PEM file of CA certificates";
        try
        {
            if (Directory.Exists(text))
            {
                expected = "a PEM file of CA certificates, but it is a directory";
                return false;
            }

            var certificates = new X509Certificate2Collection();
            certificates.ImportFromPemFile(text);
            if (certificates.Count == 0)
            {
                expected = "a PEM file of CA certificates, but it has no certificate (no -----BEGIN CERTIFICATE----- block)";
            }

            foreach (var certificate in certificates)
            {
                certificate.Dispose();
            }

            return certificates.Count > 0;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            expected = "a PEM file of CA certificates, but the file was not found";
            return false;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            expected = $"a PEM file of CA certificates, but it cannot be read: {ex.Message}";
            return false;
        }
    }
}
