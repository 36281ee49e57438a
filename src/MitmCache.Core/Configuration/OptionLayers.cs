using System.Collections;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace MitmCache.Configuration;

/// <summary>
/// Applies the three option sources onto one <see cref="ProxyOptions"/>, lowest precedence first:
/// a JSON file, then <c>MITMCACHE_*</c> environment variables, then command-line flags.
/// A later layer replaces a value (lists included) only where it names it.
/// </summary>
public static class OptionLayers
{
    public const string EnvironmentPrefix = "MITMCACHE_";

    private static readonly PropertyInfo[] s_properties = typeof(ProxyOptions).GetProperties();

    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Reads a JSON config file; unknown keys and bad values are reported, not ignored.</summary>
    public static void ApplyFile(ProxyOptions target, string path, List<string> errors)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions
            {
                CommentHandling = JsonCommentHandling.Skip,
                AllowTrailingCommas = true,
            });
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            errors.Add($"config file '{path}': {ex.Message}");
            return;
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                errors.Add($"config file '{path}': the top level must be a JSON object");
                return;
            }

            foreach (var member in document.RootElement.EnumerateObject())
            {
                var property = Array.Find(s_properties, p => p.Name.Equals(member.Name.Replace("-", ""), StringComparison.OrdinalIgnoreCase));
                if (property is null)
                {
                    errors.Add($"config file '{path}': unknown option '{member.Name}'");
                    continue;
                }

                try
                {
                    object? value = member.Value.ValueKind == JsonValueKind.Array && property.PropertyType == typeof(string[])
                        ? member.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetRawText()).ToArray()
                        : member.Value.ValueKind is JsonValueKind.Number && property.PropertyType == typeof(string)
                            ? member.Value.GetRawText()
                            : member.Value.Deserialize(property.PropertyType, s_json);
                    property.SetValue(target, value);
                }
                catch (JsonException ex)
                {
                    errors.Add($"config file '{path}': option '{member.Name}': {ex.Message}");
                }
            }
        }
    }

    /// <summary>Applies <c>MITMCACHE_LISTEN</c>, <c>MITMCACHE_ALLOW_PORT=5000,8443</c> and so on.</summary>
    public static void ApplyEnvironment(ProxyOptions target, IDictionary environment, List<string> errors)
    {
        foreach (var property in s_properties)
        {
            var name = EnvironmentName(property.Name);
            if (environment[name] is not string raw)
            {
                continue;
            }

            if (property.PropertyType == typeof(string[]))
            {
                property.SetValue(target, raw.Split([',', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            }
            else if (property.PropertyType == typeof(bool?))
            {
                if (bool.TryParse(raw, out var flag) || TryParseBinary(raw, out flag))
                {
                    property.SetValue(target, flag);
                }
                else
                {
                    errors.Add($"{name}: '{raw}' is not true or false");
                }
            }
            else
            {
                property.SetValue(target, raw);
            }
        }
    }

    /// <summary>Copies every property of <paramref name="flags"/> that has the same name and a value.</summary>
    public static void ApplyFlags(ProxyOptions target, object flags)
    {
        foreach (var source in flags.GetType().GetProperties())
        {
            var property = Array.Find(s_properties, p => p.Name == source.Name);
            var value = source.GetValue(flags);
            if (property is null || value is null)
            {
                continue;
            }

            if (value is IEnumerable<string> list && value is not string)
            {
                var items = list.ToArray();
                if (items.Length > 0)
                {
                    property.SetValue(target, items);
                }

                continue;
            }

            if (value is false && property.PropertyType == typeof(bool?))
            {
                continue; // an absent switch must not override the file or the environment
            }

            property.SetValue(target, value);
        }
    }

    public static string EnvironmentName(string propertyName)
    {
        var builder = new StringBuilder(EnvironmentPrefix);
        for (var i = 0; i < propertyName.Length; i++)
        {
            if (i > 0 && char.IsUpper(propertyName[i]))
            {
                builder.Append('_');
            }

            builder.Append(char.ToUpperInvariant(propertyName[i]));
        }

        return builder.ToString();
    }

    private static bool TryParseBinary(string raw, out bool value)
    {
        value = raw is "1" or "yes" or "on";
        return raw is "0" or "1" or "yes" or "no" or "on" or "off";
    }
}
