using System.Collections;
using System.Text.Json;

namespace MitmCache.Configuration;

/// <summary>
/// Reads what each source says about the options of <see cref="ProxyOptions"/>: a JSON file, then
/// <c>MITMCACHE_*</c> environment variables, then command-line flags. A later layer replaces an option
/// (a list as a whole) only where it names it. Within one layer a single-valued option may be named
/// once; list options repeat and take commas everywhere.
/// </summary>
public static class OptionLayers
{
    private static readonly char[] s_listSeparators = [',', ' ', '\n'];

    /// <summary>
    /// Reads the three layers and returns the value of each option that one of them names, from the
    /// highest. Every problem (unknown option, repeated option, unreadable file) goes to <paramref name="errors"/>.
    /// </summary>
    public static Dictionary<OptionDefinition, GivenValue> Read(IReadOnlyList<string> flags, IDictionary environment,
        IReadOnlyList<OptionDefinition> options, List<string> errors)
    {
        var fromFlags = ReadFlags(flags, options, errors);
        var fromEnvironment = ReadEnvironment(environment, options, errors);
        var merged = new Dictionary<OptionDefinition, GivenValue>();
        var config = options.FirstOrDefault(o => !o.InConfigFile);
        if (config is not null && (fromFlags.GetValueOrDefault(config) ?? fromEnvironment.GetValueOrDefault(config)) is { } file)
        {
            foreach (var (option, value) in ReadFile(file.Values[0], options, errors))
            {
                merged[option] = value;
            }
        }

        foreach (var layer in new[] { fromEnvironment, fromFlags })
        {
            foreach (var (option, value) in layer)
            {
                merged[option] = value;
            }
        }

        return merged;
    }

    /// <summary><c>--name VALUE</c>, <c>--name=VALUE</c>, or a switch alone. Anything else is reported.</summary>
    public static Dictionary<OptionDefinition, GivenValue> ReadFlags(IReadOnlyList<string> args, IReadOnlyList<OptionDefinition> options, List<string> errors)
    {
        var values = new Dictionary<OptionDefinition, List<string>>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                errors.Add($"unexpected argument '{arg}': options start with -- (mitmcache run --help lists them)");
                continue;
            }

            var equals = arg.IndexOf('=', StringComparison.Ordinal);
            var name = equals < 0 ? arg[2..] : arg[2..equals];
            var option = options.FirstOrDefault(o => o.Name == name);
            if (option is null)
            {
                var near = options.Where(o => Distance(o.Name, name) <= 2).Select(o => o.Flag).FirstOrDefault();
                errors.Add($"unknown option '--{name}'" + (near is null ? " (mitmcache run --help lists them)" : $"; did you mean {near}?"));
                continue;
            }

            string text;
            if (equals >= 0)
            {
                text = arg[(equals + 1)..];
            }
            else if (option.Arity == OptionArity.Switch)
            {
                text = "true";
            }
            else if (i + 1 < args.Count)
            {
                text = args[++i];
            }
            else
            {
                errors.Add($"{option.Flag}: a value is required ({option.ValueName})");
                continue;
            }

            if (!values.TryGetValue(option, out var list))
            {
                values[option] = list = [];
            }

            list.AddRange(option.Arity == OptionArity.List ? Split(text, [',']) : [text]);
        }

        var given = new Dictionary<OptionDefinition, GivenValue>();
        foreach (var (option, list) in values)
        {
            if (option.Arity != OptionArity.List && list.Count > 1)
            {
                errors.Add(option.Secret
                    ? $"{option.Flag} is given {list.Count} times; give it once"
                    : $"{option.Flag} is given {list.Count} times ({string.Join(", ", list.Select(v => $"'{v}'"))}); give it once");
                continue;
            }

            given[option] = new GivenValue(list, option.Flag);
        }

        return given;
    }

    /// <summary><c>MITMCACHE_LISTEN</c>, <c>MITMCACHE_ALLOW_PORT=5000,8443</c> and so on; the names are case-sensitive.</summary>
    public static Dictionary<OptionDefinition, GivenValue> ReadEnvironment(IDictionary environment, IReadOnlyList<OptionDefinition> options, List<string> errors)
    {
        var given = new Dictionary<OptionDefinition, GivenValue>();
        foreach (var option in options)
        {
            if (environment[option.EnvironmentVariable] is string raw)
            {
                given[option] = new GivenValue(option.Arity == OptionArity.List ? Split(raw, s_listSeparators) : [raw], option.EnvironmentVariable);
            }
        }

        return given;
    }

    /// <summary>
    /// A JSON object whose keys are option names (camelCase, kebab-case, any letter case); comments and
    /// trailing commas are allowed, null means "not given". Unknown and repeated keys and values of the
    /// wrong shape are reported, not ignored.
    /// </summary>
    public static Dictionary<OptionDefinition, GivenValue> ReadFile(string path, IReadOnlyList<OptionDefinition> options, List<string> errors)
    {
        var given = new Dictionary<OptionDefinition, GivenValue>();
        var source = $"config file '{path}'";
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            errors.Add($"{source}: {ex.Message}");
            return given;
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                errors.Add($"{source}: the top level must be a JSON object");
                return given;
            }

            var seen = new HashSet<OptionDefinition>();
            foreach (var member in document.RootElement.EnumerateObject())
            {
                var key = member.Name.Replace("-", "", StringComparison.Ordinal);
                var option = options.FirstOrDefault(o => o.InConfigFile && o.FileKey.Equals(key, StringComparison.OrdinalIgnoreCase));
                if (option is null)
                {
                    errors.Add($"{source}: unknown option '{member.Name}'");
                }
                else if (!seen.Add(option))
                {
                    errors.Add($"{source}: option '{member.Name}' is given more than once; give it once");
                    given.Remove(option);
                }
                else if (member.Value.ValueKind != JsonValueKind.Null)
                {
                    if (FileValues(member.Value, option) is { } values)
                    {
                        given[option] = new GivenValue(values, source);
                    }
                    else
                    {
                        errors.Add($"{source}: option '{member.Name}': expected {(option.Arity == OptionArity.List ? "a list or a comma-separated string" : "a string, a number or true/false")}");
                    }
                }
            }
        }

        return given;
    }

    private static List<string>? FileValues(JsonElement value, OptionDefinition option)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                return option.Arity == OptionArity.List ? Split(value.GetString()!, [',']) : [value.GetString()!];
            case JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False:
                return [value.GetRawText()];
            case JsonValueKind.Array when option.Arity == OptionArity.List:
                var items = new List<string>();
                foreach (var item in value.EnumerateArray())
                {
                    if (item.ValueKind is not (JsonValueKind.String or JsonValueKind.Number))
                    {
                        return null;
                    }

                    items.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : item.GetRawText());
                }

                return items;
            default:
                return null;
        }
    }

    private static List<string> Split(string text, char[] separators) =>
        [.. text.Split(separators, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>Edit distance, for "did you mean": option and command names are short.</summary>
    internal static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1], previous[j]) + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            previous = current;
        }

        return previous[b.Length];
    }
}
